"""Find, identify and load models: bundled ones, the user's model directory, explicit paths.

A model is a diffusers-layout folder, a single-file Stable Diffusion `.safetensors`, or a kaiga
family folder (`kaiga.json` + `model.safetensors` + `tokenizer/`: the gan, vae and transformer
families). The format is
decided by content, never by extension: pickle checkpoints (`.ckpt`, `.pt`, `.bin` that unpickle)
can run arbitrary code when loaded, so they are refused with the command that converts them.

Example:
    >>> ref = resolve_model(None)
    >>> ref.name, ref.source
    ('scenes-diffusion', 'bundled')
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch

from kaiga.paths import BUNDLED_DIR, DEFAULT_MODEL, model_home, user_models_dir
from kaiga.safetensors_header import read_header


class ModelFormat(str, Enum):
    DIFFUSERS_FOLDER = "diffusers-folder"
    SINGLE_FILE = "single-file"
    KAIGA_FOLDER = "kaiga-folder"


class ModelError(ValueError):
    """A model that cannot be found or loaded; the message says what to do."""


@dataclass(frozen=True)
class ModelRef:
    name: str
    path: Path
    format: ModelFormat
    source: str  # "bundled", "user" or "path"

    @property
    def family(self) -> str:
        info = self.path / "kaiga.json"
        if self.format is not ModelFormat.SINGLE_FILE and info.exists():
            return json.loads(info.read_text()).get("family", "diffusion")
        return "diffusion"


def is_pickle(path: Path) -> bool:
    """torch.save zip archives and raw pickles (protocol 2+ starts with 0x80)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _pickle_refusal(path: Path) -> ModelError:
    return ModelError(
        f"{path} is a pickle checkpoint: loading pickles can run arbitrary code, so kaiga refuses them. "
        "Convert it once in a trusted environment, e.g. "
        "`python -c \"import torch, safetensors.torch as s; sd = torch.load('IN', weights_only=True); "
        "s.save_file({k: v.contiguous() for k, v in sd.get('state_dict', sd).items()}, 'OUT.safetensors')\"`, "
        "then pass the .safetensors file."
    )


def identify(path: Path) -> ModelFormat:
    """The format of the model at `path`, read from its content."""
    if path.is_dir():
        if (path / "model_index.json").exists() or (path / "unet").is_dir():
            return ModelFormat.DIFFUSERS_FOLDER
        if (path / "kaiga.json").exists() and (path / "model.safetensors").exists():
            return ModelFormat.KAIGA_FOLDER
        raise ModelError(f"{path} is a folder but not a model (no model_index.json, no kaiga.json + model.safetensors)")
    if not path.is_file():
        raise ModelError(f"{path} does not exist")
    if read_header(path) is not None:
        return ModelFormat.SINGLE_FILE
    if is_pickle(path):
        raise _pickle_refusal(path)
    raise ModelError(f"{path} is neither a safetensors file nor a diffusers folder")


def _ref(path: Path, source: str) -> ModelRef:
    """A ModelRef named after the folder, or the file without its suffix."""
    return ModelRef(path.stem if path.is_file() else path.name, path, identify(path), source)


def _scan(folder: Path, source: str) -> list[ModelRef]:
    refs = []
    if not folder.is_dir():
        return refs
    for p in sorted(folder.iterdir()):
        try:
            refs.append(_ref(p, source))
        except ModelError:
            continue
    return refs


def list_models(extra_paths: list[Path] = ()) -> list[ModelRef]:
    """Bundled models, then the user's model directory, then explicit paths."""
    refs = _scan(BUNDLED_DIR, "bundled") + _scan(user_models_dir(), "user")
    return refs + [_ref(Path(p), "path") for p in extra_paths]


def resolve_model(name_or_path: str | None) -> ModelRef:
    """A model by name (bundled or in the user's directory) or by path; None is the default model."""
    name = name_or_path or DEFAULT_MODEL
    known = list_models()
    for ref in known:
        if ref.name == name:
            return ref
    p = Path(name).expanduser()
    if p.exists():
        return _ref(p, "path")
    known = ", ".join(r.name for r in known) or "none"
    raise ModelError(f"model {name!r} not found: known models are {known}; or give a path "
                     f"(a diffusers folder or a .safetensors file); user models live in {user_models_dir()}")


HASH_CACHE = "hashes.json"  # in model_home(): model hashes by their weight files' path, size and mtime


def weight_files(ref: ModelRef) -> list[Path]:
    """The weight files that loading `ref` reads, and nothing else under its folder: for a diffusers folder
    each network's plain safetensors, else its variant (`.fp16`), never a clone's other copies."""
    if ref.format is ModelFormat.SINGLE_FILE:
        return [ref.path]
    if ref.format is ModelFormat.KAIGA_FOLDER:
        return [ref.path / "model.safetensors"]
    from kaiga.families.diffusion.folder import FolderError, loaded_files

    try:
        return loaded_files(ref.path)
    except FolderError as e:
        raise ModelError(str(e)) from None


def model_hash(ref: ModelRef) -> str:
    """A1111-style short hash: the first 10 hex digits of SHA-256 over the weight files that load (`weight_files`).

    Remembered in `$KAIGA_HOME/hashes.json` by each file's path, size and modification time (as A1111's
    cache.json), so a multi-GB checkpoint (~2 s per GB here) is read once, not on every run.
    """
    files = weight_files(ref)
    try:
        key = json.dumps([[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files])
    except OSError as e:
        raise ModelError(f"{ref.path}: cannot read its weights ({e})") from None
    cache_path = model_home() / HASH_CACHE
    cache = _read_cache(cache_path)
    if key not in cache:
        h = hashlib.sha256()
        for f in files:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        cache = {**_read_cache(cache_path), key: h.hexdigest()[:10]}  # re-read: another process may have added some
        _write_cache(cache_path, cache)
    return cache[key]


def _read_cache(path: Path) -> dict[str, str]:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: hash again
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_cache(path: Path, cache: dict[str, str]) -> None:
    """Written whole and renamed into place, so a reader never sees half a file; a read-only home only costs time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=0))
        os.replace(tmp, path)
    except OSError:
        pass


def model_info(ref: ModelRef, config_dir: Path | None = None) -> dict:
    """The model's info (kaiga.json keys: capabilities, `defaults`) as the loaded model will have it, read
    without loading or hashing a weight: its kaiga.json, a diffusers folder's configs, or a single file's
    header (its kaiga metadata, else the configs of `config_dir` as `load_model` would use them).

    `Capabilities.from_info(model_info(ref))` is what a request is checked against before a slow load.
    """
    from kaiga.families.diffusion.folder import download_info, folder_info

    try:
        if ref.format is ModelFormat.KAIGA_FOLDER:
            return json.loads((ref.path / "kaiga.json").read_text())
        if ref.format is ModelFormat.DIFFUSERS_FOLDER:
            return folder_info(ref.path)
        header = read_header(ref.path) or {}
        meta = header.get("__metadata__") or {}
        if "kaiga.info" in meta:
            return json.loads(meta["kaiga.info"]) or download_info(json.loads(meta["kaiga.vae_config"]))
        if config_dir is not None:
            return folder_info(config_dir)
    except (OSError, ValueError, KeyError) as e:  # FolderError, unreadable JSON
        raise ModelError(f"{ref.path}: cannot read what the model is ({e})") from None
    # A downloaded checkpoint without configs: the header gives the autoencoder's depth; the native size is
    # SD 1.x's (loading it needs a config folder, whose configs then decide).
    blocks = len({k.split(".")[3] for k in header if k.startswith("first_stage_model.encoder.down.")}) or 4
    return download_info({"block_out_channels": [None] * blocks, "sample_size": 512})


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device, else cuda, then mps, then cpu."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _quiet_libraries() -> None:
    """Loading bars and float32 notices of diffusers/transformers would drown our own progress bar."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


# diffusers and transformers build a model's modules on the "meta" device inside a context that patches
# torch globally (accelerate's init_empty_weights), so two threads loading at once (the server's
# per-model workers) break each other's modules: "Cannot copy out of meta tensor". One load at a time.
_LOAD_LOCK = threading.Lock()


def load_model(ref: ModelRef, device: torch.device, config_dir: Path | None = None):
    """Load `ref` on `device`, fp16 on GPUs and fp32 elsewhere (one load at a time per process)."""
    with _LOAD_LOCK:
        return _load_model(ref, device, config_dir)


def _load_model(ref: ModelRef, device: torch.device, config_dir: Path | None):
    from kaiga.families.diffusion.model import LatentDiffusion

    _quiet_libraries()
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if ref.format is ModelFormat.SINGLE_FILE:
        from kaiga.families.diffusion.single_file import SingleFileError, load_single_file

        try:
            model = load_single_file(ref.path, config_dir=config_dir, dtype=dtype)
        except SingleFileError as e:
            raise ModelError(str(e)) from None
    elif ref.format is ModelFormat.KAIGA_FOLDER:
        from kaiga.families.registry import family_class

        try:
            model = family_class(ref.family).load(ref.path, dtype=dtype)
        except (OSError, ValueError, KeyError, RuntimeError) as e:  # unknown family, missing or mismatched weights
            raise ModelError(f"{ref.path} is not a loadable {ref.family} model folder: {e}") from None
    else:
        try:
            model = LatentDiffusion.load(ref.path, dtype=dtype)
        except (OSError, ValueError, KeyError) as e:  # missing or malformed component files
            raise ModelError(f"{ref.path} is not a loadable diffusers model folder: {e}") from None
    return model.to(device).eval()
