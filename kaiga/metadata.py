"""Generation metadata in images: what made an image, written so other tools can read it too.

A saved PNG carries two text chunks: ``parameters``, in AUTOMATIC1111's layout (which most image
viewers, Civitai and ComfyUI loaders already understand), and ``kaiga``, the full record as JSON
(lossless, for re-running a generation exactly). Reading also understands images made by A1111
(PNG text or JPEG/WebP EXIF UserComment) and by ComfyUI (its ``prompt`` graph).

Example:
    >>> rec = GenerationRecord(prompt="a red fox, snow", seed=123, sampler="euler-a", steps=20,
    ...     guidance=7.0, width=64, height=64, model="scenes-diffusion", model_hash="abcdef0123",
    ...     kaiga_version="0.1.0", created="2024-05-01T12:00:00+00:00")
    >>> text = to_a1111_parameters(rec)
    >>> print(text)  # doctest: +NORMALIZE_WHITESPACE
    a red fox, snow
    Steps: 20, Sampler: Euler a, CFG scale: 7.0, Seed: 123, Size: 64x64, Model hash: abcdef0123,
    Model: scenes-diffusion, Version: kaiga 0.1.0
    >>> parse_a1111_parameters(text)["Sampler"]
    'Euler a'
    >>> GenerationRecord.from_json(rec.to_json()) == rec
    True
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as _pkg_metadata
from pathlib import Path
from typing import Any, Union

from PIL import ExifTags, Image, PngImagePlugin, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "A1111_SAMPLER_NAMES",
    "SAMPLER_FROM_A1111",
    "GenerationRecord",
    "ImageMetadata",
    "MetadataError",
    "comfyui_summary",
    "describe",
    "parse_a1111_parameters",
    "png_bytes",
    "read_metadata",
    "save_png",
    "to_a1111_parameters",
    "write_atomic",
]

PARAMETERS_KEY = "parameters"  # A1111's PNG text key
KAIGA_KEY = "kaiga"
POSTPROCESS_UPSCALER = "Lanczos"  # images made before the learned upscaler say no `upscaler` in extra

# Spelled out here rather than imported from the diffusion family, so that reading metadata
# (e.g. `kaiga info`) never imports torch or diffusers.
A1111_SAMPLER_NAMES: dict[str, str] = {
    "ddim": "DDIM",
    "euler": "Euler",
    "euler-a": "Euler a",
    "dpm++2m": "DPM++ 2M",
    "lcm": "LCM",
}
SAMPLER_FROM_A1111: dict[str, str] = {v: k for k, v in A1111_SAMPLER_NAMES.items()}

# A1111's own regex (modules/infotext_utils.py): `Key: value` pairs, values optionally JSON-quoted.
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_NEGATIVE_PREFIX = "Negative prompt:"

_UNICODE_PREFIX = b"UNICODE\x00"
_ASCII_PREFIX = b"ASCII\x00\x00\x00"


class MetadataError(ValueError):
    """The file cannot be read as an image, so it has no metadata to give."""


def _kaiga_version() -> str:
    try:
        return _pkg_metadata.version("kaiga")
    except _pkg_metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class GenerationRecord(BaseModel):
    """Everything needed to reproduce one generated image."""

    # Frozen: a record describes a finished image. Unknown fields are ignored (not rejected) so
    # that images written by a newer kaiga still open in an older one.
    model_config = ConfigDict(frozen=True, extra="ignore", protected_namespaces=())

    prompt: str
    negative_prompt: str = ""
    seed: int
    sampler: str  # our names ("euler-a"); "" for a family that has none (gan, vae, transformer)
    steps: int = Field(ge=0)  # 0 for a family without denoising steps
    guidance: float | None = None  # None for a family without classifier-free guidance
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    model: str
    model_hash: str = Field(pattern=r"^[0-9a-f]{10}$")  # A1111 short hash: first 10 hex of sha256
    # The model's card.json, short sha256 as model_hash: the sources and licences of what trained it (None: no card)
    model_card: str | None = Field(default=None, pattern=r"^[0-9a-f]{10}$")
    family: str = "diffusion"
    upscale: int = Field(default=1, ge=1)
    # Image edits: the uploads they started from (SHA-256 in kaiga's upload store) and how much was redrawn.
    init_image: str | None = None
    mask: str | None = None  # white = repaint
    strength: float | None = None
    mask_blur: int | None = None  # inpainting: pixels of Gaussian blur on the mask's edge
    timings: dict[str, float] = Field(default_factory=dict)
    kaiga_version: str = Field(default_factory=_kaiga_version)
    created: str = Field(default_factory=_utc_now)  # ISO 8601, UTC
    extra: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> str:
        return self.model_dump_json()

    def pixels_fields(self) -> dict[str, Any]:
        """The fields that make the image's pixels: all but when it was made, how fast and by which kaiga
        (the same request run twice has the same ones; another seed, sampler, model or edit has others).
        The watermark's payload is left out too: it is derived from these; and the model card's hash (a card
        describes the weights that model_hash already names)."""
        fields = self.model_dump(mode="json", exclude={"created", "timings", "kaiga_version", "model_card"})
        fields["extra"] = {k: v for k, v in fields["extra"].items() if k != "watermark"}
        return fields

    @classmethod
    def from_json(cls, text: str | bytes) -> GenerationRecord:
        return cls.model_validate_json(text)


# --- A1111 `parameters` text ---------------------------------------------------------------


def _quote(value: object) -> str:
    """A value as A1111 writes it: JSON-quoted only when it would otherwise not parse back."""
    text = str(value)
    # A1111 quotes on , : and newline; a quote or edge whitespace would also be mangled by RE_PARAM.
    if any(c in text for c in ',:\n"') or text != text.strip():
        return json.dumps(text, ensure_ascii=False)
    return text


def _unquote(value: str) -> str:
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:  # A1111 also keeps such a value as written
        return value


def _a1111_fields(record: GenerationRecord) -> dict[str, object]:
    fields: dict[str, object] = {}
    if record.sampler:  # a denoising family; A1111 writes them for every image
        fields |= {"Steps": record.steps, "Sampler": A1111_SAMPLER_NAMES.get(record.sampler, record.sampler),
                   "CFG scale": record.guidance}
    fields |= {
        "Seed": record.seed,
        "Size": f"{record.width}x{record.height}",
        "Model hash": record.model_hash,
        "Model": record.model,
    }
    if record.strength is not None:  # A1111 writes it for img2img
        fields["Denoising strength"] = record.strength
    if record.mask_blur:  # A1111 writes it for inpainting
        fields["Mask blur"] = record.mask_blur
    if record.upscale > 1:
        fields["Postprocess upscale by"] = record.upscale
        fields["Postprocess upscaler"] = record.extra.get("upscaler", POSTPROCESS_UPSCALER)
    fields["Version"] = f"kaiga {record.kaiga_version}"
    return fields


def to_a1111_parameters(record: GenerationRecord) -> str:
    """The record as AUTOMATIC1111's `parameters` text: prompt, negative prompt, one params line."""
    params = ", ".join(f"{k}: {_quote(v)}" for k, v in _a1111_fields(record).items())
    # As A1111's create_infotext: the negative line is left out when empty, and the whole stripped.
    negative = f"\n{_NEGATIVE_PREFIX} {record.negative_prompt}" if record.negative_prompt else ""
    return f"{record.prompt}{negative}\n{params}".strip()


def parse_a1111_parameters(text: str) -> dict[str, str]:
    """A1111 `parameters` text as {"prompt", "negative_prompt", <each key>: <value>}, as A1111 parses it.

    Values stay strings (A1111's own parser keeps them so too); quoted ones are unquoted.
    """
    *lines, last = text.strip().split("\n")
    # A1111's rule: the last line holds the parameters only if it has at least 3 of them.
    if len(RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt, negative = _split_prompts(lines)
    result: dict[str, str] = {"prompt": prompt, "negative_prompt": negative}
    for key, value in RE_PARAM.findall(last):
        result[key] = _unquote(value)
    return result


def _split_prompts(lines: list[str]) -> tuple[str, str]:
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines:
        line = line.strip()
        if line.startswith(_NEGATIVE_PREFIX):
            line = line[len(_NEGATIVE_PREFIX):].strip()
            negative.append(line)
        elif negative:  # lines after "Negative prompt:" continue the negative prompt
            negative.append(line)
        else:
            prompt.append(line)
    return "\n".join(prompt), "\n".join(negative)


# --- writing -------------------------------------------------------------------------------


def _pnginfo(record: GenerationRecord) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    # add_text writes tEXt when the text is Latin-1 and iTXt (UTF-8) otherwise, as A1111 does.
    info.add_text(PARAMETERS_KEY, to_a1111_parameters(record))
    info.add_text(KAIGA_KEY, record.to_json())
    return info


def png_bytes(image: Image.Image, record: GenerationRecord) -> bytes:
    """The image encoded as a PNG with `parameters` and `kaiga` text chunks."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=_pnginfo(record))
    return buf.getvalue()


def save_png(image: Image.Image, record: GenerationRecord, path: str | os.PathLike[str], *,
             exclusive: bool = False) -> Path:
    """Write `png_bytes` to `path` atomically: a crash leaves the old file or none, never half a PNG.

    `exclusive`: never replace a file already at `path` (FileExistsError instead)."""
    # encode first: an encoding error must not leave a temp file
    return write_atomic(Path(path), png_bytes(image, record), exclusive=exclusive)


def write_atomic(path: Path, data: bytes, *, exclusive: bool = False) -> Path:
    """Write `data` to `path` through a synced temporary file and a rename: all of it or nothing.

    The file gets the mode a plain `open` would give it (0644 under umask 022), not the temporary
    file's 0600. `exclusive`: never replace a file already at `path`; FileExistsError instead.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.fsync(f.fileno())
        if exclusive:
            _link_new(tmp, path)
        else:
            os.replace(tmp, path)  # same directory, so the rename is atomic
    finally:
        Path(tmp).unlink(missing_ok=True)  # gone after a rename; a link leaves the temporary name behind
    return path


def _link_new(tmp: str, path: Path) -> None:
    """Give the file at `tmp` the name `path` unless that name is taken (FileExistsError), atomically."""
    try:
        os.link(tmp, path)  # fails, rather than replaces, when `path` exists
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: claim the name, then rename over the claim
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.replace(tmp, path)


def _umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux), so that threads
    writing files at the same moment never see a umask of 0."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageMetadata:
    """What an image says about how it was made."""

    source: str  # "kaiga" | "a1111" | "comfyui" | "none"
    record: GenerationRecord | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)


ImageSource = Union[str, os.PathLike, bytes, Image.Image]


def read_metadata(path_or_image: ImageSource) -> ImageMetadata:
    """Generation metadata of an image file, its bytes, or an open PIL image.

    Kaiga's own chunk wins; then A1111's `parameters` (PNG text or EXIF UserComment); then ComfyUI.
    """
    if isinstance(path_or_image, Image.Image):
        return _classify(_text_chunks(path_or_image))
    source = io.BytesIO(path_or_image) if isinstance(path_or_image, bytes) else path_or_image
    try:
        image = Image.open(source)
    except UnidentifiedImageError as e:
        raise MetadataError(f"not an image: {_name(path_or_image)}") from e
    with image:
        return _classify(_text_chunks(image))


def record_of(source: ImageSource) -> GenerationRecord | None:
    """The kaiga record in an image, or None: it has none, or no metadata that can be read (a photo)."""
    try:
        return read_metadata(source).record
    except Exception:  # an unreadable or foreign file is the usual case, never an error here
        return None


def _name(source: ImageSource) -> str:
    return f"<{len(source)} bytes>" if isinstance(source, bytes) else os.fspath(source)  # type: ignore[arg-type]


def _text_chunks(image: Image.Image) -> dict[str, str]:
    """Every text chunk of the image, plus an EXIF UserComment and a JPEG/GIF comment if present."""
    try:
        # PngImageFile.text also reads the chunks after the image data, which .info misses.
        items = dict(getattr(image, "text", None) or {})
        items.update({k: v for k, v in image.info.items() if isinstance(v, str) and k not in items})
        comment = _exif_user_comment(image)
    except (OSError, SyntaxError, ValueError) as e:  # PIL's ways of saying "corrupt file"
        raise MetadataError(f"cannot read image metadata: {e}") from e
    if comment:
        items["UserComment"] = comment
    if isinstance(image.info.get("comment"), bytes):  # A1111 writes GIF infotext here
        items.setdefault("comment", image.info["comment"].decode("utf-8", errors="ignore"))
    return {str(k): str(v) for k, v in items.items()}


def _exif_user_comment(image: Image.Image) -> str:
    """EXIF UserComment, as A1111 writes it for JPEG/WebP (piexif's UserComment.dump(..., "unicode"))."""
    raw = image.getexif().get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.UserComment)
    if isinstance(raw, str):
        return raw.strip("\x00")
    if isinstance(raw, tuple):  # some writers store the tag as BYTE; PIL may then give ints
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        return ""
    return _decode_user_comment(raw).strip("\x00")


def _decode_user_comment(raw: bytes) -> str:
    prefix, body = raw[:8], raw[8:]
    if prefix == _UNICODE_PREFIX:
        return body.decode(_utf16_guess(body), errors="replace")
    if prefix == _ASCII_PREFIX or prefix == b"\x00" * 8:
        return body.decode("utf-8", errors="replace")
    return raw.decode("utf-8", errors="ignore")  # no prefix: A1111's own fallback


def _utf16_guess(body: bytes) -> str:
    # piexif (and so A1111) writes big-endian; some tools write little-endian. Mostly-ASCII text
    # puts its zero bytes at even offsets in UTF-16-BE and at odd offsets in UTF-16-LE.
    zeros_even = body[0::2].count(0)
    zeros_odd = body[1::2].count(0)
    return "utf-16-le" if zeros_odd > zeros_even else "utf-16-be"


def _classify(raw: dict[str, str]) -> ImageMetadata:
    params = _a1111_parameters_of(raw)
    record = _kaiga_record(raw.get(KAIGA_KEY))
    if record is not None:
        return ImageMetadata("kaiga", record, params, raw)
    if params:
        return ImageMetadata("a1111", None, params, raw)
    if "prompt" in raw or "workflow" in raw:
        return ImageMetadata("comfyui", None, comfyui_summary(raw.get("prompt", "")), raw)
    return ImageMetadata("none", None, {}, raw)


def _kaiga_record(text: str | None) -> GenerationRecord | None:
    if not text:
        return None
    try:
        return GenerationRecord.from_json(text)
    except ValueError:  # damaged or foreign "kaiga" chunk: fall back to the other sources
        return None


def _a1111_parameters_of(raw: dict[str, str]) -> dict[str, str]:
    if raw.get(PARAMETERS_KEY):
        return parse_a1111_parameters(raw[PARAMETERS_KEY])
    # A comment may be anything (a camera's, a caption); count it as A1111's only with a params line.
    for key in ("UserComment", "comment"):
        if raw.get(key):
            parsed = parse_a1111_parameters(raw[key])
            if len(parsed) > 2:
                return parsed
    return {}


# --- ComfyUI -------------------------------------------------------------------------------

_SAMPLER_CLASSES = ("KSampler", "KSamplerAdvanced")
_SAMPLER_INPUTS = {"seed": "seed", "noise_seed": "seed", "steps": "steps", "cfg": "cfg",
                   "sampler_name": "sampler_name", "scheduler": "scheduler", "denoise": "denoise"}
_MAX_LINK_DEPTH = 8  # graphs can route conditioning through a few nodes; cycles must not hang us


def comfyui_summary(prompt_json: str) -> dict[str, Any]:
    """Seed, steps, cfg, sampler, scheduler and prompts of the first KSampler in a ComfyUI API graph."""
    try:
        graph = json.loads(prompt_json)
    except (json.JSONDecodeError, TypeError):
        return {}
    if not isinstance(graph, dict):
        return {}
    sampler = _first_sampler(graph)
    if sampler is None:
        return {}
    inputs = sampler.get("inputs", {})
    summary: dict[str, Any] = {"class_type": sampler["class_type"]}
    for name, key in _SAMPLER_INPUTS.items():
        if name in inputs:
            summary[key] = _resolve(graph, inputs[name], name)
    for side in ("positive", "negative"):
        text = _resolve(graph, inputs.get(side), "text")
        if isinstance(text, str):
            summary[side] = text
    model = _find_input(graph, "ckpt_name")
    if model is not None:
        summary["model"] = model
    return summary


def _first_sampler(graph: dict[str, Any]) -> dict[str, Any] | None:
    # Node ids are numeric strings; the lowest is usually the main (not the hires-fix) sampler.
    def order(node_id: str) -> tuple[int, str]:
        return (int(node_id), "") if str(node_id).isdigit() else (1 << 62, str(node_id))

    for node_id in sorted(graph, key=order):
        node = graph[node_id]
        if isinstance(node, dict) and node.get("class_type") in _SAMPLER_CLASSES:
            return node
    return None


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _resolve(graph: dict[str, Any], value: Any, want: str, depth: int = 0) -> Any:
    """A literal input value, following [node_id, slot] links to the node that holds `want`."""
    if not _is_link(value):
        return value
    if depth >= _MAX_LINK_DEPTH:
        return None
    node = graph.get(str(value[0]))
    if not isinstance(node, dict):
        return None
    inputs = node.get("inputs", {})
    if want in inputs:
        return _resolve(graph, inputs[want], want, depth + 1)
    literals = [v for v in inputs.values() if not _is_link(v)]
    if len(literals) == 1:  # e.g. a primitive/seed node holding just the value
        return literals[0]
    links = [v for v in inputs.values() if _is_link(v)]
    # Conditioning passed through (ConditioningSetArea, ControlNetApply...): follow its first input.
    return _resolve(graph, links[0], want, depth + 1) if links else None


def _find_input(graph: dict[str, Any], name: str) -> Any:
    for node in graph.values():
        if isinstance(node, dict) and name in node.get("inputs", {}):
            return node["inputs"][name]
    return None


# --- display -------------------------------------------------------------------------------

_SOURCE_NAMES = {"kaiga": "kaiga", "a1111": "AUTOMATIC1111 (parameters)", "comfyui": "ComfyUI", "none": "none"}


def describe(meta: ImageMetadata) -> str:
    """A human-readable multi-line summary, for `kaiga info`."""
    lines = [f"Source: {_SOURCE_NAMES.get(meta.source, meta.source)}"]
    if meta.record is not None:
        lines += _describe_record(meta.record)
    elif meta.parameters:
        lines += _describe_parameters(meta.parameters)
    else:
        lines.append("No generation metadata found.")
    if meta.raw:
        lines.append(f"Text chunks: {', '.join(sorted(meta.raw))}")
    return "\n".join(lines)


def _describe_record(r: GenerationRecord) -> list[str]:
    size = f"{r.width}x{r.height}"
    if r.upscale > 1:
        size += f" (upscaled x{r.upscale} to {r.width * r.upscale}x{r.height * r.upscale})"
    lines = [f"Prompt: {r.prompt}"]
    if r.negative_prompt:
        lines.append(f"Negative prompt: {r.negative_prompt}")
    lines += [
        f"Model: {r.model} [{r.model_hash}] ({r.family})",
        *([f"Model card: {r.model_card} (kaiga card {r.model})"] if r.model_card else []),
        *([f"Sampler: {r.sampler}, {r.steps} steps, guidance {r.guidance:g}"] if r.sampler else []),
        f"Seed: {r.seed}",
        f"Size: {size}",
    ]
    if r.init_image is not None:
        lines.append(f"Edit of: {r.init_image}" + (f", mask {r.mask}" if r.mask else "") + f", strength {r.strength:g}"
                     + (f", mask blur {r.mask_blur}" if r.mask_blur else ""))
    if r.timings:
        lines.append("Timings: " + ", ".join(f"{k} {v:.0f}" for k, v in r.timings.items()))
    if r.extra:
        lines.append("Extra: " + json.dumps(r.extra, ensure_ascii=False, sort_keys=True))
    lines.append(f"Created: {r.created} by kaiga {r.kaiga_version}")
    return lines


def _describe_parameters(params: dict[str, Any]) -> list[str]:
    lines = []
    for key in ("prompt", "positive"):
        if params.get(key):
            lines.append(f"Prompt: {params[key]}")
    for key in ("negative_prompt", "negative"):
        if params.get(key):
            lines.append(f"Negative prompt: {params[key]}")
    skip = {"prompt", "positive", "negative_prompt", "negative"}
    lines += [f"{key}: {value}" for key, value in params.items() if key not in skip]
    return lines
