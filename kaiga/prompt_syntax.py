"""The prompt syntax of every interface, parsed once: permutations, wildcards, composition, prompt editing.

What a prompt may hold besides words (A1111 weighting `(word:1.3)` / `[word]` is read later, per text, by
`kaiga.text.prompt_weights`; Midjourney's closing `--no x` by `kaiga.request.split_no`):

- **Permutations** `{red|blue} car` (Midjourney's): one prompt per combination, every group expanded, so
  `{red|blue} car in {snow|rain}` is four prompts (`permutations`; `count_permutations` says how many
  before anything runs). A brace group without `|` is text (`{prompt}` in a style template stays).
- **Wildcards** `__colour__` (A1111's dynamic prompts): a line drawn from a list, per image, from the
  image's seed, so the same seed draws the same line (`fill_wildcards`; the lists are found by
  `kaiga.styles.wildcards`). A drawn line may name further wildcards (8 levels at most).
- **Composition** — A1111's `a red car AND snow :0.5` and Midjourney's `red car::2 snow::1`: sub-prompts
  with a weight each (`parts`). A diffusion model denoises with each and sums their guidance (composable
  diffusion, Liu et al. 2022): uncond + g · Σ wᵢ (condᵢ − uncond). AND's weights are used as written
  (A1111); `::` weights are relative and normalised to sum to 1 (Midjourney: `a::1 b::1` = `a::2 b::2`),
  and a negative one steers away (`fruit::-0.5`). One prompt uses one of the two, not both.
- **Prompt editing** (A1111's): `[from:to:when]` reads `from` until step `when` and `to` after it;
  `[to:when]` adds `to` from then on, `[from::when]` removes `from`; `when` below 1 is a fraction of the
  steps, from 1 up a step number. `[a|b]` alternates a and b every step. They nest. `schedule(text,
  steps)` gives the text of each step, as runs of (last step, text). `[word]` without `:when` or `|`
  stays A1111's weighting down.

A malformed prompt is one `PromptSyntaxError` naming the character where it goes wrong
(`check_syntax`, which `GenerationRequest` runs on every prompt, in every interface).

Hand-written: the syntax is A1111's and Midjourney's, which no maintained library parses together
(A1111's own parser is a lark grammar inside its web UI, the dynamicprompts package parses wildcards and
variants but neither prompt editing nor `::`); each piece is a few dozen lines of pure Python here.

Example:
    >>> permutations("a {red|blue} car in {snow|rain}")
    ['a red car in snow', 'a red car in rain', 'a blue car in snow', 'a blue car in rain']
    >>> [(p.text, p.weight) for p in parts("a red car::3 snow::1")]
    [('a red car', 0.75), ('snow', 0.25)]
    >>> schedule("a [dog:cat:0.5] in the snow", steps=10)
    [(5, 'a dog in the snow'), (10, 'a cat in the snow')]
    >>> check_syntax("a {red|blue car")
    Traceback (most recent call last):
    ...
    kaiga.prompt_syntax.PromptSyntaxError: at character 3: `{` is never closed; close it with `}`
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from itertools import product

MAX_WILDCARD_DEPTH = 8  # a drawn line may name wildcards, down to this depth (a cycle is an error)
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)"
_AND = re.compile(r"\bAND\b")
_WILDCARD = re.compile(r"__([A-Za-z0-9][A-Za-z0-9_\-/]*?)__")
_COLONS = re.compile(rf"::\s*({_NUMBER})?")


class PromptSyntaxError(ValueError):
    """A prompt that cannot be parsed; the message names the character (1-based) and what is allowed there."""

    def __init__(self, at: int, what: str):
        super().__init__(f"at character {at + 1}: {what}")
        self.at = at


# --- permutations {a|b} --------------------------------------------------------------------------
def _brace_groups(prompt: str) -> list[tuple[int, int, list[str]]]:
    """(start, end, options) of each `{...|...}` group; a group without `|` is text and not listed, and so is a
    `}` that closes nothing (as A1111 reads a stray closing bracket)."""
    groups, i = [], 0
    while i < len(prompt):
        c = prompt[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            end = i + 1
            while end < len(prompt) and prompt[end] not in "{}":
                end += 1
            if end == len(prompt):
                raise PromptSyntaxError(i, "`{` is never closed; close it with `}`")
            if prompt[end] == "{":
                raise PromptSyntaxError(end, "permutations do not nest; write {red car|blue car}")
            inner = prompt[i + 1 : end]
            if "|" in inner:
                groups.append((i, end + 1, [o.strip() for o in inner.split("|")]))
            i = end + 1
            continue
        i += 1
    return groups


def count_permutations(prompt: str) -> int:
    """How many prompts `permutations` makes (1 without a group), without making them."""
    count = 1
    for _, _, options in _brace_groups(prompt):
        count *= len(options)
    return count


def permutations(prompt: str) -> list[str]:
    """Every combination of the prompt's `{a|b}` groups, the first group varying slowest."""
    groups = _brace_groups(prompt)
    if not groups:
        return [prompt]
    pieces, last = [], 0
    for start, end, _ in groups:
        pieces.append(prompt[last:start])
        last = end
    tail = prompt[last:]
    out = []
    for choice in product(*(options for _, _, options in groups)):
        out.append("".join(p + c for p, c in zip(pieces, choice)) + tail)
    return out


# --- wildcards __name__ --------------------------------------------------------------------------
def wildcard_names(prompt: str) -> list[tuple[int, str]]:
    """(position, name) of each `__name__` in the prompt."""
    return [(m.start(), m.group(1)) for m in _WILDCARD.finditer(prompt)]


def fill_wildcards(prompt: str, lists: dict[str, list[str]], seed: int) -> str:
    """The prompt with each `__name__` replaced by a line of `lists[name]` drawn from `seed` (the n-th
    wildcard of a prompt draws from its own stream, so adding one does not change the others' draws)."""
    rng = random.Random(seed)
    for depth in range(MAX_WILDCARD_DEPTH + 1):
        found = wildcard_names(prompt)
        if not found:
            return prompt
        if depth == MAX_WILDCARD_DEPTH:
            raise PromptSyntaxError(found[0][0], f"wildcards nest deeper than {MAX_WILDCARD_DEPTH} levels "
                                                 f"(does __{found[0][1]}__ name itself?)")
        for at, name in found:
            if name not in lists:
                raise PromptSyntaxError(at, f"no wildcard list __{name}__; `kaiga wildcards` lists them")
        prompt = _WILDCARD.sub(lambda m: rng.choice(lists[m.group(1)]), prompt)
    return prompt


# --- composition: AND, :: ------------------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    """One sub-prompt of a composed prompt and its weight."""

    text: str
    weight: float = 1.0
    at: int = field(default=0, compare=False)  # where the text starts in the prompt (for error positions)


def _and_parts(prompt: str) -> list[Part]:
    out, start = [], 0
    for end in [m.start() for m in _AND.finditer(prompt)] + [len(prompt)]:
        piece = prompt[start:end]
        m = re.fullmatch(rf"(.*?)\s*:\s*({_NUMBER})\s*", piece, re.S)
        text, weight = (m[1], float(m[2])) if m and not m[1].rstrip().endswith(("(", "[")) else (piece, 1.0)
        if not text.strip():
            raise PromptSyntaxError(start, "AND needs a prompt on each side, e.g. a red car AND snow :0.5")
        out.append(Part(text.strip(), weight, start + len(text) - len(text.lstrip())))
        start = end + 3
    return out


def _colon_parts(prompt: str) -> list[Part]:
    out, start, weights = [], 0, []
    for m in _COLONS.finditer(prompt):
        text = prompt[start : m.start()]
        if not text.strip():
            raise PromptSyntaxError(m.start(), "`::` needs words before it, e.g. red car::2 snow")
        out.append((text.strip(), start + len(text) - len(text.lstrip())))
        weights.append(float(m[1]) if m[1] else 1.0)
        start = m.end()
    if (rest := prompt[start:]).strip():
        out.append((rest.strip(), start + len(rest) - len(rest.lstrip())))
        weights.append(1.0)
    total = sum(weights)
    if total <= 0:
        raise PromptSyntaxError(prompt.index("::"), f"the `::` weights sum to {total:g}; they must sum to more than 0")
    return [Part(t, w / total, at) for (t, at), w in zip(out, weights)]


def parts(prompt: str) -> list[Part]:
    """The prompt's sub-prompts (AND or ::) with their weights; a plain prompt is one part of weight 1."""
    has_and, has_colons = bool(_AND.search(prompt)), "::" in prompt
    if has_and and has_colons:
        raise PromptSyntaxError(prompt.index("::"), "use AND (A1111) or :: (Midjourney) in one prompt, not both")
    if has_and:
        return _and_parts(prompt)
    if has_colons:
        return _colon_parts(prompt)
    return [Part(prompt, 1.0, 0)]


# --- prompt editing [from:to:when], alternation [a|b] ----------------------------------------------
@dataclass(frozen=True)
class _Edit:
    before: tuple  # nodes
    after: tuple
    when: float


@dataclass(frozen=True)
class _Alternate:
    options: tuple  # of node tuples


@dataclass(frozen=True)
class _Bracket:
    """`[text]`: A1111's weighting down, kept as written around its (possibly edited) inside."""

    inside: tuple


def _matching(text: str, start: int) -> int:
    """Index of the `]` that closes the `[` at `start` (brackets nest, escapes skipped); -1 if none."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _split_top(text: str, sep: str, offset: int) -> list[tuple[int, str]]:
    """(position, piece) of `text` split at `sep` outside any bracket."""
    out, depth, last, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(depth - 1, 0)
        elif c == sep and depth == 0:
            out.append((offset + last, text[last:i]))
            last = i + 1
        i += 1
    out.append((offset + last, text[last:]))
    return out


def _parse(text: str, offset: int = 0) -> tuple:
    """The nodes of `text`: strings, edits, alternations and weight brackets."""
    nodes, i, last = [], 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c != "[":
            i += 1
            continue
        end = _matching(text, i)
        if end < 0:  # as A1111: an unclosed `[` weighs the rest down; prompt_weights reads it
            break
        nodes.append(text[last:i])
        nodes.append(_bracket(text[i + 1 : end], offset + i + 1))
        i = last = end + 1
    nodes.append(text[last:])
    return tuple(n for n in nodes if n != "")


def _bracket(inside: str, offset: int):
    options = _split_top(inside, "|", offset)
    if len(options) > 1:
        for at, o in options:
            if not o.strip():
                raise PromptSyntaxError(at, "an alternation [a|b] needs text in every option")
        return _Alternate(tuple(_parse(o, at) for at, o in options))
    fields = _split_top(inside, ":", offset)
    if len(fields) == 1:
        return _Bracket(_parse(inside, offset))
    when_at, when_text = fields[-1]
    if not re.fullmatch(rf"\s*{_NUMBER}\s*", when_text):
        if len(fields) == 2:  # `[word:x]`: A1111 reads it as text weighed down
            return _Bracket(_parse(inside, offset))
        raise PromptSyntaxError(when_at, f"the `when` of [from:to:when] must be a number: a fraction of the steps "
                                         f"below 1 or a step number (got {when_text.strip()!r})")
    when = float(when_text)
    if when < 0:
        raise PromptSyntaxError(when_at, f"the `when` of [from:to:when] must be 0 or more (got {when_text.strip()})")
    if len(fields) == 2:  # [to:when]: added from then on
        return _Edit((), _parse(fields[0][1], fields[0][0]), when)
    if len(fields) == 3:
        return _Edit(_parse(fields[0][1], fields[0][0]), _parse(fields[1][1], fields[1][0]), when)
    raise PromptSyntaxError(fields[3][0], "prompt editing is [from:to:when] or [to:when]: at most two `:` "
                                          "outside brackets")


def _render(nodes: tuple, step: int, steps: int) -> str:
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Bracket):
            out.append("[" + _render(node.inside, step, steps) + "]")
        elif isinstance(node, _Alternate):
            out.append(_render(node.options[(step - 1) % len(node.options)], step, steps))
        else:
            switch = node.when * steps if node.when < 1 else node.when
            out.append(_render(node.before if step <= switch else node.after, step, steps))
    return "".join(out)


def _scheduled(nodes: tuple) -> bool:
    return any(isinstance(n, (_Edit, _Alternate)) or (isinstance(n, _Bracket) and _scheduled(n.inside))
               for n in nodes)


def schedule(text: str, steps: int) -> list[tuple[int, str]]:
    """The text of each of `steps` steps (1-based) as runs: [(last step of the run, text), ...]."""
    nodes = _parse(text)
    if not _scheduled(nodes):
        return [(steps, text)]
    runs: list[tuple[int, str]] = []
    for step in range(1, steps + 1):
        now = _render(nodes, step, steps)
        if runs and runs[-1][1] == now:
            runs[-1] = (step, now)
        else:
            runs.append((step, now))
    return runs


def is_scheduled(text: str) -> bool:
    """Whether the text changes over the steps (prompt editing or alternation)."""
    return "[" in text and _scheduled(_parse(text))


def is_composed(prompt: str) -> bool:
    """Whether the prompt needs more than one text condition: sub-prompts (AND, ::) or prompt editing."""
    return bool(_AND.search(prompt)) or "::" in prompt or is_scheduled(prompt)


# --- all of it -------------------------------------------------------------------------------------
def check_syntax(prompt: str) -> None:
    """PromptSyntaxError at the first malformed piece of the prompt (names of wildcards are checked where the
    lists are, `kaiga.styles.wildcards`)."""
    _brace_groups(prompt)
    for part in parts(prompt):  # on the prompt as written (braces and all), so positions are the user's
        _parse(part.text, part.at)


def texts(prompt: str, steps: int = 20) -> list[str]:
    """Every distinct text a prompt conditions on over `steps` steps (its parts, each at each step)."""
    out = [text for part in parts(prompt) for _, text in schedule(part.text, steps)]
    return list(dict.fromkeys(out))


SHARE_STEPS = 20  # families that do not denoise read [from:to:when] as shares of this many steps


def vector_terms(prompt: str, steps: int = SHARE_STEPS) -> list[tuple[str, float]]:
    """The prompt as a weighted sum of plain texts whose weights sum to 1, for families that condition on one
    text vector (GAN, VAE): c = Σ weight · c(text). Each part's texts weigh by the share of the steps they
    hold, the parts by their weights over max(1, the sum of the positive ones) (so `a AND b` is their mean),
    and the empty prompt takes the rest (what a negative or a small weight leaves).

    >>> vector_terms("a [dog:cat:0.5]")
    [('a dog', 0.5), ('a cat', 0.5)]
    >>> vector_terms("red car::3 snow::-1")  # weights 1.5 and -0.5, over 1.5
    [('red car', 1.0), ('snow', -0.333333333333), ('', 0.333333333333)]
    """
    pieces = parts(prompt)
    norm = max(1.0, sum(p.weight for p in pieces if p.weight > 0))
    weights: dict[str, float] = {}
    for part in pieces:
        last = 0
        for end, text in schedule(part.text, steps):
            weights[text] = weights.get(text, 0.0) + part.weight / norm * (end - last) / steps
            last = end
    rest = 1.0 - sum(weights.values())
    if abs(rest) > 1e-9:
        weights[""] = weights.get("", 0.0) + rest
    return [(t, round(w, 12)) for t, w in weights.items()]


def main_text(prompt: str, steps: int = SHARE_STEPS) -> str:
    """The one text a model that reads a prompt's words (not vectors) takes of a composed prompt: its heaviest
    part, as it reads for the most steps."""
    part = max(parts(prompt), key=lambda p: p.weight)
    runs, last, best = schedule(part.text, steps), 0, ("", -1)
    for end, text in runs:
        if end - last > best[1]:
            best = (text, end - last)
        last = end
    return best[0]
