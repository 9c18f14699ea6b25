"""A campaign plan (`kaiga campaign run PLAN.yaml`): one prompt with `{slot}`s, axes of values, seeds — and its cells.

The smallest plan:

    prompt: "a {colour} car in the {scene}"
    axes: {colour: [red, blue], scene: [city, forest]}
    seeds: 2

An axis is a `{slot}` of the prompt or any request field (`steps`, `style`, `guidance`, `model`, ...); its
values are a list, or a wildcard list's name (`__colour__`: every line of it). `seeds` is a count (from the
plan's `seed`, default 0) or a list. Every other key is a request field fixed for every cell (`model`,
`steps`, `negative_prompt`, ...) or the campaign's `name` (default: the file's name). A cell is one image: one
value of every axis and one seed; its request is checked before anything runs.

Each cell has a key: a fingerprint of every field that changes its pixels (the request, `n` aside) and the
model's hash, so a rerun or a resume after a crash makes only the cells that are missing, and a cell whose
model was retrained is a new cell.

Example:
    >>> plan = CampaignPlan.model_validate({"prompt": "a {colour} car in the {scene}", "seeds": 2,
    ...                                     "axes": {"colour": ["red", "blue"], "scene": ["city", "forest"]}})
    >>> cells = plan.cells()
    >>> len(cells), cells[0].request.prompt, cells[0].request.seed, cells[-1].values
    (8, 'a red car in the city', 0, {'colour': 'blue', 'scene': 'forest', 'seed': 1})
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kaiga.request import GenerationRequest, RequestError, describe_error, field_specs

MAX_CELLS = 10_000  # a plan that makes more is refused before anything runs
NOT_FIXED = ("n", "init_image", "mask", "blend", "strength", "mask_blur")  # a cell is one image, made from text
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WILDCARD = re.compile(r"^__([A-Za-z0-9_/-]+)__$")


class PlanError(ValueError):
    """A plan that cannot run: one line naming the key and what is allowed."""


@dataclass(frozen=True)
class CampaignCell:
    index: int
    values: dict  # each axis's value and the seed, as the plan names them
    request: GenerationRequest
    key: str = ""  # the pixels' fingerprint with the model's hash (`with_keys`)


class CampaignPlan(BaseModel):
    """A plan as read from YAML or JSON; `fixed` holds the request fields every cell shares."""

    model_config = ConfigDict(extra="allow")
    name: str | None = Field(None, description="The campaign's name (default: the plan file's name)")
    prompt: str = Field(description="The prompt, with a {slot} for each prompt axis")
    axes: dict[str, list[Any] | str] = Field(default_factory=dict)
    seeds: int | list[int] = 1

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not NAME.match(v):
            raise ValueError(f"letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit (got {v!r})")
        return v

    @property
    def fixed(self) -> dict:
        return dict(self.model_extra or {})

    def seed_list(self) -> list[int]:
        base = int(self.fixed.get("seed") or 0)
        if isinstance(self.seeds, int):
            if not 1 <= self.seeds <= MAX_CELLS:
                raise PlanError(f"seeds: a count from 1 to {MAX_CELLS} or a list of seeds (got {self.seeds})")
            return [base + i for i in range(self.seeds)]
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise PlanError("seeds: a list of different seeds, at least one")
        return list(self.seeds)

    def axis_values(self) -> dict[str, list]:
        """Each axis's values, wildcard lists expanded; PlanError for an axis that is neither slot nor field."""
        from kaiga.styles.wildcards import load_wildcards

        slots = set(_SLOT.findall(self.prompt))
        fields = set(field_specs()) - set(NOT_FIXED) - {"prompt", "seed"}
        out: dict[str, list] = {}
        lists = None
        for name, values in self.axes.items():
            if name not in slots and name not in fields:
                raise PlanError(f"axes.{name}: neither a {{{name}}} slot of the prompt nor a request field "
                                f"(slots: {', '.join(sorted(slots)) or 'none'}; fields such as steps, style, model)")
            if isinstance(values, str):
                m = _WILDCARD.match(values.strip())
                lists = load_wildcards() if lists is None else lists
                if m is None or m[1] not in lists:
                    raise PlanError(f"axes.{name}: a list of values or a wildcard list's name such as __colour__ "
                                    f"(got {values!r})")
                values = lists[m[1]]
            if not values:
                raise PlanError(f"axes.{name}: at least one value")
            out[name] = list(values)
        missing = slots - set(out)
        if missing:
            raise PlanError(f"prompt: the slot {{{sorted(missing)[0]}}} has no axis; add axes.{sorted(missing)[0]}")
        for name in self.fixed:
            if name not in field_specs() or name in NOT_FIXED:
                raise PlanError(f"{name}: not a plan key (name, prompt, axes, seeds) nor a request field a cell "
                                f"can take")
        return out

    def count(self) -> int:
        n = len(self.seed_list())
        for values in self.axis_values().values():
            n *= len(values)
        return n

    def cells(self) -> list[CampaignCell]:
        """Every cell, the first axis varying slowest and the seed fastest, each request checked."""
        axes, seeds = self.axis_values(), self.seed_list()
        total = self.count()
        if total > MAX_CELLS:
            raise PlanError(f"the plan makes {total:,} cells; at most {MAX_CELLS:,} a campaign")
        slots = set(_SLOT.findall(self.prompt))
        if re.search(r"\{[^{}]*\|[^{}]*\}", self.prompt):
            raise PlanError("prompt: a campaign varies its prompt with axes ({slot}s); {a|b} choices would make "
                            "several images a cell")
        fixed = {k: v for k, v in self.fixed.items() if k != "seed"}
        out = []
        for index, combo in enumerate(itertools.product(*axes.values(), seeds)):
            values = dict(zip([*axes, "seed"], combo))
            fields = {**fixed, **{k: v for k, v in values.items() if k not in slots}}
            prompt = _SLOT.sub(lambda m: str(values[m[1]]), self.prompt)
            try:
                request = GenerationRequest.model_validate({**fields, "prompt": prompt, "n": 1})
            except (ValidationError, ValueError) as e:
                where = ", ".join(f"{k}={v}" for k, v in values.items())
                raise PlanError(f"the cell {where}: {describe_error(e)}") from None
            out.append(CampaignCell(index, values, request))
        return out


# Request fields added after campaigns had keys: they join a cell's key only when set, so a campaign made before
# them keeps its keys (a resume makes only its missing cells).
KEYED_WHEN_SET = ("lora",)


def cell_key(request: GenerationRequest, model_hash: str) -> str:
    """The fingerprint of a cell's pixels: every request field but `n` and the model's name, with the model's hash.

    >>> cell_key(GenerationRequest(prompt="a red car", seed=1), "0123456789") == cell_key(
    ...     GenerationRequest(prompt="a red car", seed=1, n=1), "0123456789")
    True
    >>> cell_key(GenerationRequest(prompt="a red car", seed=1), "0123456789")  # as before the `lora` field
    'fc14c36dc5c5d57f4cdf49dc'
    """
    fields = request.model_dump(mode="json", exclude={"n", "model"})
    for name in KEYED_WHEN_SET:  # fields newer than the key: at their default they leave it as it was
        if not fields.get(name):
            fields.pop(name, None)
    return hashlib.sha256(json.dumps([fields, model_hash], sort_keys=True).encode()).hexdigest()[:24]


def with_keys(cells: list[CampaignCell], model_hash_of) -> list[CampaignCell]:
    """The cells with their keys; `model_hash_of(model name or None)` gives each model's hash (once per model)."""
    hashes: dict[str | None, str] = {}
    out = []
    for c in cells:
        if c.request.model not in hashes:
            hashes[c.request.model] = model_hash_of(c.request.model)
        out.append(CampaignCell(c.index, c.values, c.request, cell_key(c.request, hashes[c.request.model])))
    return out


def plan_data(text: str) -> dict:
    """A plan's YAML (or JSON) text as a mapping; PlanError naming the line of a syntax error."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PlanError(f"not valid YAML{where} ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(data, dict):
        raise PlanError("a plan is a mapping with prompt, axes and seeds (see docs/CAMPAIGNS.md)")
    return data


def parse_plan(data: dict) -> CampaignPlan:
    """The plan a mapping holds; PlanError naming the key (`axes.colour: ...`) at the first problem."""
    try:
        return CampaignPlan.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise PlanError(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None


def check_cells(cells: list[CampaignCell], check) -> None:
    """`check(request)` on every cell (what its model cannot make: RequestError, ModelError), as PlanError naming
    the cell by its values."""
    for cell in cells:
        try:
            check(cell.request)
        except ValueError as e:  # RequestError and ModelError are ValueErrors
            raise PlanError(f"the cell {', '.join(f'{k}={v}' for k, v in cell.values.items())}: {e}") from None


def load_plan(path: Path) -> CampaignPlan:
    """A plan file (YAML or JSON) read and checked; PlanError naming the file and the key at fault."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise PlanError(f"{path}: cannot read it ({e.strerror or e})") from None
    try:
        plan = parse_plan(plan_data(text))
    except PlanError as e:
        raise PlanError(f"{path}: {e}") from None
    if plan.name is None:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).stem).strip("-.")[:64] or "campaign"
        plan = plan.model_copy(update={"name": stem})
    try:
        plan.cells()  # every cell checked now, before anything runs
    except (RequestError, PlanError) as e:
        raise PlanError(f"{path}: {e}") from None
    return plan
