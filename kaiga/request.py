"""`GenerationRequest`: the one validated description of what to make, shared by CLI, API and UI.

Every limit lives here, so an out-of-range value is refused the same way whichever interface it came
through, with a message naming the field and the allowed range (`describe_error`).

Example:
    >>> GenerationRequest(prompt="a red car", seed=7, steps=4).steps
    4
    >>> try:
    ...     GenerationRequest(prompt="a red car", steps=0)
    ... except Exception as e:
    ...     print(describe_error(e))
    steps: must be between 1 and 150 (got 0)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Annotated, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kaiga.prompt_syntax import check_syntax, count_permutations, is_composed

MAX_PROMPT_CHARS = 1000  # OpenAI's dall-e-2 limit; also keeps the record small
MAX_SEED = 2**32 - 1
LIMITS = {
    "n": (1, 16),
    "steps": (1, 150),
    "guidance": (0.0, 30.0),
    "width": (16, 2048),
    "height": (16, 2048),
    "seed": (0, MAX_SEED),
    "upscale": (1, 8),
    "strength": (0.0, 1.0),
    "mask_blur": (0, 64),
    "stylize": (0, 1000),  # Midjourney's scale: how strongly style and guidance act (kaiga/styles/mix.py)
    "chaos": (0, 100),  # Midjourney's scale: how different a request's images are (kaiga/families/chaos.py)
    # Options of the non-diffusion families (ignored by the others; None = the family's default).
    "truncation": (0.0, 1.0),  # GAN / VAE: scale of the latent noise; < 1 trades variety for quality
    "temperature": (0.05, 2.0),  # transformer: softmax temperature of each image token
    "top_k": (0, 100_000),  # transformer: sample among the k likeliest tokens; 0 = all
    "top_p": (0.01, 1.0),  # transformer: nucleus sampling mass
    "candidates": (1, 16),  # transformer: draws per image, the best kept by the contrastive reranker
}
MAX_STYLE_CHARS = 500  # a style mix: names and shares
MAX_LORA_CHARS = 500  # LoRAs: names (or paths) and weights
DEFAULT_STRENGTH = 0.75  # A1111's default denoising strength: keeps the layout, redraws the detail
BLEND_STRENGTH = 0.6  # a blend keeps the mixed layout and colours and redraws what the mix blurred
MAX_BLEND = 4  # Midjourney's /blend takes 2 to 5 images; 4 keep a mix readable at 64²
# Uploaded images (init images, masks). Checked on the file's header, before any pixel is decoded.
MAX_UPLOAD_BYTES = 4 * 2**20  # OpenAI's limit for image edits
MAX_UPLOAD_PIXELS = 4096 * 4096  # 64 MiB as RGBA once decoded; a larger header is a decompression bomb
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP")  # PIL format names; nothing else is ever decoded


class Sampler(str, Enum):
    """The samplers a request can name; each model says which of them it supports (`kaiga.json`)."""

    DDIM = "ddim"
    EULER = "euler"
    EULER_A = "euler-a"
    DPMPP_2M = "dpm++2m"
    LCM = "lcm"


class UpscaleMethod(str, Enum):
    """How `upscale` enlarges: the learned 4× network (kaiga/upscaler.py) or Lanczos."""

    LEARNED = "learned"
    LANCZOS = "lanczos"

    @property
    def label(self) -> str:
        """The name records, A1111's `parameters` and its upscaler list give it."""
        return {"learned": "kaiga-4x", "lanczos": "Lanczos"}[self.value]


FAMILY_OPTIONS = ("truncation", "temperature", "top_k", "top_p", "candidates")
_SHA256 = r"^[0-9a-f]{64}$"  # an upload is named by its content hash, never by a path


def _range(name: str, **kw):
    lo, hi = LIMITS[name]
    return Field(ge=lo, le=hi, **kw)


class GenerationRequest(BaseModel):
    """What to generate. `None` means "the model's default" (size, model) or "draw one" (seed)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    # Image edits. Declared before `prompt`, whose check reads them: an edit may have an empty prompt
    # (a variation of an image), a text-to-image request may not. Each description is the help text of
    # the field in every interface (CLI option, API field, UI input); the range is added from LIMITS.
    init_image: Annotated[str | None, Field(pattern=_SHA256, description=(
        "Image to edit instead of starting from noise: the SHA-256 of a stored upload (every interface stores "
        "the file and fills this in); it is resized to the output size."))] = None
    mask: Annotated[str | None, Field(pattern=_SHA256, description=(
        "With an init image: repaint only where this stored upload is white (black = keep)."))] = None
    blend: Annotated[str, Field(max_length=MAX_BLEND * 80, description=(
        "Images to blend instead of an init image (Midjourney's /blend): 2-4 stored uploads' SHA-256, each with "
        "an optional share, `sha:0.7,sha:0.3` (equal without); their latents are mixed by the model's autoencoder "
        "and redrawn (every interface stores the files and fills this in)."))] = ""
    strength: Annotated[float | None, _range("strength", description=(
        "With an init image: how much to redraw, 0 keeps it, 1 ignores it; runs int(steps × strength) steps."),
        json_schema_extra={"when_omitted": DEFAULT_STRENGTH})] = None
    mask_blur: Annotated[int, _range("mask_blur", description=(
        "With a mask: soften its edge by this many pixels (Gaussian blur), so the repainted area blends "
        "into the rest; 0 = a hard edge (without a mask it has no effect)."))] = 0
    # Empty is allowed, as in A1111 and diffusers: an unconditional image. The CLI and the OpenAI API, whose
    # users always mean to give one, refuse it themselves (`require_prompt`).
    prompt: Annotated[str, Field(max_length=MAX_PROMPT_CHARS, description=(
        "What to draw, in plain English or as comma-separated tags; (word:1.3) weighs a word up, [word] down, "
        "[from:to:when] switches words mid-way, `a AND b :0.5` or `a::2 b` composes prompts, {red|blue} makes "
        "one image per choice, __colour__ draws from a wildcard list; a closing `--no fog, rain` (Midjourney's) "
        "adds those words to the negative prompt (docs/PROMPTS.md)."))]
    negative_prompt: Annotated[str, Field(max_length=MAX_PROMPT_CHARS, description="What to steer away from.")] = ""
    style: Annotated[str, Field(max_length=MAX_STYLE_CHARS, description=(
        "Style preset(s) from `kaiga styles`: one name, or a mix with a share each, e.g. "
        "\"watercolor:0.7,neon:0.3\" (mixed in the text encoder's space; shares under 1 keep some of the plain prompt)."))] = ""
    lora: Annotated[str, Field(max_length=MAX_LORA_CHARS, description=(
        "LoRAs to apply to a diffusion model, NAME[:WEIGHT] each (weight 1 if left out), comma-separated: "
        "`kaiga finetune`'s by name ($KAIGA_HOME/loras), or a .safetensors LoRA in diffusers' or kohya's layout."))] = ""
    stylize: Annotated[int | None, _range("stylize", description=(
        "How strongly style and guidance act, Midjourney's scale: 0 = the plain prompt and half the guidance, "
        "100 = as written, 1000 = the style pushed about three times as far and twice the guidance."),
        json_schema_extra={"when_omitted": 100})] = None
    chaos: Annotated[int | None, _range("chaos", description=(
        "How different the images of one request are from each other, Midjourney's scale: 0 = as their seeds make "
        "them, 100 = the prompt shaken hardest in the first steps, so layouts vary most (CADS)."),
        json_schema_extra={"when_omitted": 0})] = None
    seed: Annotated[int | None, _range("seed", description=(
        "Seed of the first image; image i uses seed+i. Random if omitted."))] = None
    n: Annotated[int, _range("n", description="Number of images.")] = 1
    steps: Annotated[int | None, _range("steps", description=(
        "Denoising steps; default: the model's (20 for kaiga's models, 50 for Stable Diffusion)."))] = None
    guidance: Annotated[float | None, _range("guidance", description=(
        "Classifier-free guidance scale, 1 turns guidance off; default: the model's (3 for kaiga's "
        "models, 7.5 for Stable Diffusion)."))] = None
    sampler: Annotated[Sampler, Field(description="Sampler, where the model supports it.")] = Sampler.DDIM
    width: Annotated[int | None, _range("width", description=(
        "Width in pixels, a multiple of 8; default: the model's native size."))] = None
    height: Annotated[int | None, _range("height", description=(
        "Height in pixels, a multiple of 8; default: the model's native size."))] = None
    model: Annotated[str | None, Field(description=(
        "Model name (see `kaiga models`); default: the default model."))] = None
    upscale: Annotated[int | None, _range("upscale", description=(
        "Enlarge the outputs for viewing (by upscale_method); the record keeps the native size; default: the "
        "model's (1)."))] = None
    upscale_method: Annotated[UpscaleMethod, Field(description=(
        "How upscale enlarges: learned (kaiga's 4x super-resolution network, trained on the scenes world) or "
        "lanczos."))] = UpscaleMethod.LEARNED
    truncation: Annotated[float | None, _range("truncation", description=(
        "gan / vae models: scale of the latent noise (lower: more typical, less varied); "
        "default: the model's."))] = None
    temperature: Annotated[float | None, _range("temperature", description=(
        "transformer models: sampling temperature of each image token; default: the model's."))] = None
    top_k: Annotated[int | None, _range("top_k", description=(
        "transformer models: sample among the k likeliest tokens, 0 = all; default: the model's."))] = None
    top_p: Annotated[float | None, _range("top_p", description=(
        "transformer models: nucleus sampling mass, 1 = off; default: the model's."))] = None
    candidates: Annotated[int | None, _range("candidates", description=(
        "transformer models: draws per image, the best kept by the contrastive reranker; "
        "default: the model's."))] = None

    @model_validator(mode="before")
    @classmethod
    def _midjourney_no(cls, data):
        """Midjourney's `--no fog, rain` at the end of a prompt: those words join the negative prompt (every
        interface builds this request, so every one reads the same syntax); the record keeps both as run."""
        if isinstance(data, dict) and isinstance(data.get("prompt"), str) and "--no" in data["prompt"]:
            prompt, no = split_no(data["prompt"])
            negative = data.get("negative_prompt") or ""
            data = {**data, "prompt": prompt, "negative_prompt": ", ".join(p for p in (negative, no) if p)}
        return data

    @model_validator(mode="before")
    @classmethod
    def _a1111_lora_tags(cls, data):
        """AUTOMATIC1111's `<lora:NAME:WEIGHT>` in a prompt: the tags join the `lora` field and leave the prompt
        (every interface builds this request, so every one reads them); the record lists the LoRAs it ran."""
        if isinstance(data, dict) and isinstance(data.get("prompt"), str) and "<lora:" in data["prompt"]:
            prompt, tags = split_lora_tags(data["prompt"])
            data = {**data, "prompt": prompt, "lora": ", ".join(p for p in (data.get("lora") or "", *tags) if p)}
        return data

    @model_validator(mode="after")
    def _edit_fields_need_an_image(self) -> "GenerationRequest":
        if self.blend and self.init_image is not None:
            raise ValueError("blend: give an init image or images to blend, not both")
        if self.init_image is None:
            for name in ("mask",) if self.blend else ("mask", "strength"):  # a blend takes a strength
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: only applies to an image edit; give an init image too")
        if self.is_edit and self.steps is not None and int(self.steps * self.denoise_strength) < 1:
            # As diffusers and A1111: an edit runs int(steps · strength) of the steps. With the model's
            # default steps, `kaiga.capabilities.check_request` makes the same check.
            raise ValueError(f"strength: {self.denoise_strength:g} × {self.steps} steps runs no step; "
                             f"raise strength or steps")
        return self

    @property
    def is_edit(self) -> bool:
        """Whether the request starts from an image (an init image, or the mix of a blend)."""
        return self.init_image is not None or bool(self.blend)

    @property
    def denoise_strength(self) -> float:
        """How much of the init image is redrawn: 0 keeps it, 1 ignores it (pure noise)."""
        if self.strength is None:
            return BLEND_STRENGTH if self.blend else DEFAULT_STRENGTH
        return self.strength

    def blend_parts(self) -> list[tuple[str, float]]:
        """The blend's uploads with their shares, the shares summing to 1 ([] for no blend)."""
        return parse_blend_spec(self.blend) if self.blend else []

    @field_validator("prompt")
    @classmethod
    def _prompt_syntax(cls, v: str) -> str:
        """Permutations, composition and prompt editing parse (wildcard names are checked against the lists
        before work starts, in the Studio)."""
        check_syntax(v)
        return v

    @field_validator("negative_prompt")
    @classmethod
    def _negative_syntax(cls, v: str) -> str:
        if is_composed(v) or count_permutations(v) > 1:
            raise ValueError("AND, ::, {a|b} and [from:to:when] apply to the prompt only; the negative prompt "
                             "takes words, (word:w) weights and __wildcards__")
        return v

    @field_validator("style")
    @classmethod
    def _style_syntax(cls, v: str) -> str:
        """The mix's syntax here (names are checked against the library before work starts, in the Studio)."""
        if v.strip():
            parse_style_spec(v)
        return v

    @field_validator("blend")
    @classmethod
    def _blend_syntax(cls, v: str) -> str:
        if v.strip():
            parse_blend_spec(v)
        return v.strip()

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, v: int | None) -> int | None:
        if v is not None and v % 8:
            raise ValueError(f"must be a multiple of 8 (got {v})")
        return v

    def family_options(self) -> dict:
        """The options of the non-diffusion families that this request sets (for the image's record)."""
        return {k: getattr(self, k) for k in FAMILY_OPTIONS if getattr(self, k) is not None}

    def require_prompt(self) -> "GenerationRequest":
        """This request, or RequestError when it has no prompt and is no edit: for the interfaces whose users
        always mean to give one (the CLI, the OpenAI API), where an empty prompt is a slip, not a choice."""
        if not self.is_edit and not self.prompt.strip():
            raise RequestError("prompt: must not be empty" if not self.prompt else "prompt: must contain some text")
        return self

    def seeds(self, first: int) -> list[int]:
        """Seed of each image: consecutive from the first, as A1111 does for a batch."""
        return [(first + i) % (MAX_SEED + 1) for i in range(self.n)]


@dataclass(frozen=True)
class FieldSpec:
    """One field of `GenerationRequest` as every interface presents it: a CLI option, an API field, a UI input.

    Read from the model's own field (`field_specs`), never written out a second time.
    """

    name: str
    type: type  # int, float or str (an enum's values are strings)
    default: object  # the request's default; None: the model's default, or drawn (seed)
    required: bool
    description: str
    range: tuple[int | float, int | float] | None = None  # LIMITS
    choices: tuple[str, ...] = ()  # an enum's values
    max_length: int | None = None
    when_omitted: object = None  # what a None default stands for, where it is one value (strength: 0.75)

    @property
    def help(self) -> str:
        """The description with the allowed values, for a CLI's --help or a form's tooltip."""
        text = self.description
        if self.range is not None:
            text += f" Range {_number(self.range[0])}-{_number(self.range[1])}."
        if self.choices:
            text += f" One of {', '.join(self.choices)}."
        if self.when_omitted is not None:
            text += f" Default {_number(self.when_omitted)}."
        return text

    def json(self) -> dict:
        """As the request schema endpoint answers it (JSON types: integer, number, string)."""
        kind = {int: "integer", float: "number", str: "string"}[self.type]
        return {"type": kind, "default": self.default, "required": self.required, "description": self.description,
                "minimum": self.range[0] if self.range else None, "maximum": self.range[1] if self.range else None,
                "choices": list(self.choices) or None, "max_length": self.max_length,
                "when_omitted": self.when_omitted}


def _number(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


@cache
def field_specs() -> dict[str, FieldSpec]:
    """Every field of `GenerationRequest`, in declaration order, with its type, default, range and help."""
    specs = {}
    for name, info in GenerationRequest.model_fields.items():
        kind = next(a for a in get_args(info.annotation) or (info.annotation,) if a is not type(None))
        choices = tuple(m.value for m in kind) if isinstance(kind, type) and issubclass(kind, Enum) else ()
        default = None if info.is_required() else info.default
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        specs[name] = FieldSpec(
            name=name, type=str if choices else kind, default=default.value if isinstance(default, Enum) else default,
            required=info.is_required(), description=info.description or "", range=LIMITS.get(name), choices=choices,
            max_length=next((m.max_length for m in info.metadata if hasattr(m, "max_length")), None),
            when_omitted=extra.get("when_omitted"))
    return specs


def request_schema() -> dict:
    """The request's fields as JSON, for clients that build a form from them (the web UI)."""
    return {"fields": {name: spec.json() for name, spec in field_specs().items()}}


MAX_STYLE_WEIGHT = 10.0


LORA_TAG = re.compile(r"<lora:([^:>]+)(?::([^>]*))?>")


def split_lora_tags(prompt: str) -> tuple[str, list[str]]:
    """(the prompt without A1111's `<lora:NAME:WEIGHT>` tags, the tags as NAME:WEIGHT).

    >>> split_lora_tags("a photo of sks toy, <lora:toy:0.8> on the beach <lora:film>")
    ('a photo of sks toy, on the beach', ['toy:0.8', 'film'])
    """
    tags = [f"{name}:{weight}" if weight else name for name, weight in LORA_TAG.findall(prompt)]
    return re.sub(r"\s+", " ", LORA_TAG.sub(" ", prompt)).replace(" ,", ",").strip(), tags


def split_no(prompt: str) -> tuple[str, str]:
    """(the prompt before Midjourney's `--no`, what follows it); ValueError naming the position of a bare `--no`.

    >>> split_no("a red car in the city --no fog, rain")
    ('a red car in the city', 'fog, rain')
    >>> split_no("a red car --no")
    Traceback (most recent call last):
    ...
    ValueError: prompt: at character 11 of 'a red car --no': --no needs the words to leave out, e.g. --no fog, rain
    """
    m = re.search(r"(?:^|\s)--no(?=\s|$)", prompt)
    if m is None:
        return prompt, ""
    at = m.start() + (prompt[m.start()].isspace())
    rest = prompt[m.end():].strip().strip(",").strip()
    if not rest:
        raise ValueError(f"prompt: at character {at + 1} of {prompt!r}: --no needs the words to leave out, "
                         f"e.g. --no fog, rain")
    if re.search(r"(?:^|\s)--no(?=\s|$)", rest):
        raise ValueError(f"prompt: {prompt!r} has --no twice; list every word after one --no")
    return prompt[:m.start()].strip(), rest


def blend_spec(shas: list[str], weights: list[float] | None = None) -> str:
    """The `blend` field of uploads and their shares (equal without), checked.

    >>> blend_spec(["a" * 64, "b" * 64], [3, 1]).replace("a" * 64, "A").replace("b" * 64, "B")
    'A:3,B:1'
    """
    weights = [1.0] * len(shas) if weights is None else list(weights)
    if len(weights) != len(shas):
        raise RequestError(f"weights: one weight per image to blend (got {len(weights)} for {len(shas)} images)")
    spec = ",".join(f"{sha}:{w:g}" for sha, w in zip(shas, weights))
    try:
        parse_blend_spec(spec)
    except ValueError as e:
        raise RequestError(f"blend: {e}") from None
    return spec


def parse_blend_spec(spec: str) -> list[tuple[str, float]]:
    """A `blend` field's `sha[:share],...` as (sha, share) pairs, the shares summing to 1; ValueError naming
    what is wrong (the count, a hash, the shares), without the field's name (the request adds it).

    >>> [w for _, w in parse_blend_spec(f"{'a' * 64}:3,{'b' * 64}")]
    [0.75, 0.25]
    """
    pairs = []
    for part in spec.split(","):
        sha, sep, share = part.strip().partition(":")
        try:
            w = float(share) if sep else 1.0
        except ValueError:
            w = float("nan")
        if not 0 <= w <= MAX_STYLE_WEIGHT:  # NaN too
            raise ValueError(f"a share must be a number from 0 to {MAX_STYLE_WEIGHT:g} (got {share.strip()!r})")
        pairs.append((sha, w))
    if not 2 <= len(pairs) <= MAX_BLEND:
        raise ValueError(f"2 to {MAX_BLEND} images to blend (got {len(pairs)})")
    if bad := next((sha for sha, _ in pairs if not re.fullmatch(_SHA256, sha)), None):
        raise ValueError(f"each image must be the SHA-256 of an upload, 64 hex digits (got {bad[:16]!r})")
    total = sum(w for _, w in pairs)
    if total <= 0:
        raise ValueError(f"the shares must not all be 0 (got {[w for _, w in pairs]})")
    return [(sha, w / total) for sha, w in pairs]


def parse_style_spec(spec: str) -> list[tuple[str, float]]:
    """A `style` field's `name[:share],...` as (name, share) pairs; ValueError pointing at the wrong character.

    >>> parse_style_spec("watercolor:0.7, neon:0.3")
    [('watercolor', 0.7), ('neon', 0.3)]
    >>> parse_style_spec("watercolor:x")
    Traceback (most recent call last):
    ...
    ValueError: at character 12 of 'watercolor:x': a share must be a number from 0 to 10 (got 'x')
    """
    pairs, pos = [], 0
    for raw in spec.split(","):
        start = pos + len(raw) - len(raw.lstrip())
        name, sep, weight = raw.strip().partition(":")
        if not name.strip():
            raise ValueError(f"at character {start + 1} of {spec!r}: a style name is missing")
        w = 1.0
        if sep:
            try:
                w = float(weight)
            except ValueError:
                w = float("nan")
            if not 0 <= w <= MAX_STYLE_WEIGHT:  # NaN too
                raise ValueError(f"at character {start + len(name) + 2} of {spec!r}: a share must be a number from 0 "
                                 f"to {MAX_STYLE_WEIGHT:g} (got {weight.strip()!r})")
        pairs.append((name.strip(), w))
        pos += len(raw) + 1
    names = [n.lower() for n, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"{spec!r} names a style twice")
    return pairs


class RequestError(ValueError):
    """A request that cannot be served; the message names the field and what is allowed."""


def describe_error(e: Exception) -> str:
    """One line per problem: `field: what is allowed (got value)`."""
    if not isinstance(e, ValidationError):
        return str(e)
    lines = []
    for err in e.errors():
        field = ".".join(str(p) for p in err["loc"]) or "request"
        got = err.get("input")
        kind = err["type"]
        if field in LIMITS and kind in ("greater_than_equal", "less_than_equal"):
            lo, hi = LIMITS[field]
            lines.append(f"{field}: must be between {lo} and {hi} (got {got})")
        elif kind == "string_too_long":
            lines.append(f"{field}: at most {err['ctx']['max_length']} characters (got {len(got)})")
        elif kind == "string_too_short":
            lines.append(f"{field}: must not be empty")
        elif kind == "enum":
            lines.append(f"{field}: must be one of {err['ctx']['expected']} (got {got!r})")
        elif kind == "extra_forbidden":
            lines.append(f"{field}: unknown field")
        elif kind == "string_pattern_mismatch":  # only upload hashes have a pattern
            lines.append(f"{field}: must be the SHA-256 (64 hex digits) of a stored upload (got {got!r})")
        elif not err["loc"]:  # a check across fields: its message names the field itself
            lines.append(err["msg"].removeprefix("Value error, "))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{field}: {msg}" + ("" if "got" in msg else f" (got {got!r})"))
    return "\n".join(lines)
