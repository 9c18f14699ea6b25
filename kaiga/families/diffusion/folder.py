"""What a diffusers-layout folder holds, read without loading a weight: which files each network loads
from, and what a Stable Diffusion download can do. No torch import, so hashing a model and checking a
request against it stay cheap.

A Hub folder often holds more than one copy of each network: ``diffusion_pytorch_model.safetensors``
beside its ``.fp16`` variant and the pickled ``.bin`` copies, a ``safety_checker/``, and in a full
clone the single-file checkpoints at the top. Exactly one set of files is loaded per network, and it
is the set that `component_weights` names, so the model hash covers what is loaded and nothing else.

A folder may hold only the parts that differ from another model (a distilled student: its UNet): its kaiga.json
`shares_with` names that model, and each part the folder lacks (autoencoder, text encoder, tokenizer, scheduler)
is read from that model's folder (`component_dir`): a sibling folder of that name, else the bundled one.

Example:
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / "unet").mkdir()
    >>> _ = (d / "unet" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"")
    >>> w = component_weights(d, "unet")
    >>> [f.name for f in w.files], w.variant
    (['diffusion_pytorch_model.fp16.safetensors'], 'fp16')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from kaiga.capabilities import Capabilities
from kaiga.paths import BUNDLED_DIR
from kaiga.request import Sampler

COMPONENTS = ("unet", "vae", "text_encoder")
WEIGHT_STEMS = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"}
PREFERRED_VARIANTS = ("fp16",)  # when a network has no plain weights; any other variant after these, by name
# diffusers' StableDiffusionPipeline defaults, which SD users expect (kaiga's own models: capabilities.DEFAULTS).
SD_DEFAULTS = {"steps": 50, "guidance": 7.5, "upscale": 1}


class FolderError(ValueError):
    """A diffusers folder that lacks what a network needs; the message names what was looked for."""


@dataclass(frozen=True)
class Weights:
    files: tuple[Path, ...]  # one file, or the shards of a sharded checkpoint
    variant: str | None  # None for plain files, else what `from_pretrained(variant=...)` takes


def _named(folder: Path, stem: str, variant: str | None) -> tuple[Path, ...]:
    """The files of one plain or variant checkpoint: `stem[.variant].safetensors`, or the shards of its index."""
    tag = f".{variant}" if variant else ""
    single = folder / f"{stem}{tag}.safetensors"
    if single.is_file():
        return (single,)
    index = folder / f"{stem}.safetensors.index{tag}.json"
    if index.is_file():
        shards = json.loads(index.read_text()).get("weight_map", {}).values()
        return tuple(folder / name for name in sorted(set(shards)))
    return ()


def _variants(folder: Path, stem: str) -> list[str]:
    """The variants of `stem` in `folder`, the preferred first."""
    found = set()
    if folder.is_dir():
        for p in folder.iterdir():
            if m := re.fullmatch(re.escape(stem) + r"(?:\.safetensors\.index)?\.([^.]+)\.(?:safetensors|json)", p.name):
                found.add(m[1])
    return [v for v in PREFERRED_VARIANTS if v in found] + sorted(found - set(PREFERRED_VARIANTS))


def shares_with(folder: str | Path) -> str:
    """The model whose parts `folder` borrows (its kaiga.json's `shares_with`), or "" for a folder of its own."""
    info_path = Path(folder) / "kaiga.json"
    if not info_path.is_file():
        return ""
    try:
        return str(json.loads(info_path.read_text()).get("shares_with") or "")
    except ValueError:
        return ""


def component_dir(folder: str | Path, component: str) -> Path:
    """Where `folder`'s `component` (unet, vae, text_encoder, tokenizer, scheduler) lies: its own subfolder, else
    the subfolder of the model it `shares_with`, looked for beside it and then among the bundled models.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / "base" / "vae").mkdir(parents=True)
    >>> (d / "student" / "unet").mkdir(parents=True)
    >>> _ = (d / "student" / "kaiga.json").write_text('{"shares_with": "base"}')
    >>> [component_dir(d / "student", c).relative_to(d).as_posix() for c in ("unet", "vae")]
    ['student/unet', 'base/vae']
    """
    folder = Path(folder)
    own = folder / component
    base = shares_with(folder)
    if own.is_dir() or not base:
        return own
    if Path(base).name != base:
        raise FolderError(f"{folder}/kaiga.json: shares_with names a model (a folder name such as scenes-diffusion), "
                          f"not a path (got {base!r})")
    for candidate in (folder.parent / base, BUNDLED_DIR / base):
        if (candidate / component).is_dir() and candidate.resolve() != folder.resolve():
            return candidate / component
    raise FolderError(f"{folder} has no {component}/ and its shares_with model {base!r} has none either "
                      f"(looked beside it and among the bundled models)")


def component_weights(folder: str | Path, component: str) -> Weights:
    """The safetensors files that network `component` of `folder` loads: the plain ones, else one variant.

    Pickled ``.bin`` copies are never loaded (they can run code when unpickled): a network that has only
    those is a FolderError that says how to convert them.
    """
    sub, stem = component_dir(folder, component), WEIGHT_STEMS[component]
    if files := _named(sub, stem, None):
        return Weights(files, None)
    for variant in _variants(sub, stem):
        if files := _named(sub, stem, variant):
            return Weights(files, variant)
    pickles = sorted(p.name for p in sub.glob("*.bin")) if sub.is_dir() else []
    looked = f"{stem}.safetensors, {stem}.<variant>.safetensors (e.g. .fp16) or a sharded {stem}.safetensors.index.json"
    if pickles:
        raise FolderError(f"{sub}: only pickle weights ({', '.join(pickles)}), which kaiga does not load because "
                          f"unpickling can run code; looked for {looked}. Convert them once in a trusted environment: "
                          f"`python -c \"import torch, safetensors.torch as s; s.save_file(torch.load('{sub}/"
                          f"{pickles[0]}', weights_only=True), '{sub}/{stem}.safetensors')\"`")
    raise FolderError(f"{sub}: no weights to load; looked for {looked}")


def named_text_encoder(folder: str | Path) -> str:
    """The pretrained text encoder that the folder's kaiga.json names and its `text_encoder/` does not hold
    (`kaiga.text.pretrained`'s source string), or "" for a folder that carries its own."""
    folder = Path(folder)
    info_path = folder / "kaiga.json"
    if not info_path.is_file() or _named(component_dir(folder, "text_encoder"), WEIGHT_STEMS["text_encoder"], None):
        return ""
    return json.loads(info_path.read_text()).get("config", {}).get("text", {}).get("pretrained", "")


def loaded_files(folder: str | Path) -> list[Path]:
    """Every weight file a diffusers folder's model loads, sorted: what the model hash covers (a named text
    encoder's own weights included, wherever they are installed)."""
    if source := named_text_encoder(folder):
        from kaiga.text.pretrained import TextEncoderError, weight_files

        try:
            text = weight_files(source)
        except TextEncoderError as e:
            raise FolderError(str(e)) from None
        return sorted([*(f for c in ("unet", "vae") for f in component_weights(folder, c).files), *text])
    return sorted(f for c in COMPONENTS for f in component_weights(folder, c).files)


def download_info(vae_config: dict) -> dict:
    """The kaiga.json keys of a Stable Diffusion model from elsewhere (no kaiga.json), from its VAE's config.

    Sizes need only divide by the autoencoder's factor (8): diffusers' UNet takes latents that its
    downsampling does not divide (it hands each up block the size of its skip connection), as A1111 and
    the diffusers pipelines accept 640×360. The native size is the autoencoder's `sample_size`.
    """
    native = vae_config.get("sample_size")
    factor = 2 ** (len(vae_config["block_out_channels"]) - 1)
    caps = Capabilities(family="diffusion", native_size=native if isinstance(native, int) else 512, max_size=2048,
                        size_multiple=factor, samplers=tuple(s.value for s in Sampler), edits=True, options=())
    return {**caps.to_info(), "defaults": dict(SD_DEFAULTS)}


def _config(folder: Path, component: str) -> dict:
    path = folder / component / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FolderError(f"{folder} has no readable {component}/config.json ({e})") from None


def folder_info(folder: str | Path) -> dict:
    """The info a folder's model will have once loaded: its kaiga.json, else `download_info` of its configs."""
    folder = Path(folder)
    if (folder / "kaiga.json").is_file():
        return json.loads((folder / "kaiga.json").read_text())
    return download_info(_config(folder, "vae"))
