"""LoRA adapters on a diffusion model's UNet: trained with peft, saved and loaded in the layouts people trade.

- Training: `add_lora(unet, rank, alpha)` puts peft LoRA layers on the attention projections (to_q, to_k, to_v,
  to_out.0, as diffusers' own LoRA scripts do); only they train.
- Files, `.safetensors` only (a pickle is refused, as every model file is): `save_lora` writes diffusers' layout
  (`unet.<module>.lora_A.weight` / `lora_B`, what `pipeline.load_lora_weights` reads) or kohya's
  (`lora_unet_<module>.lora_down.weight` / `.lora_up.weight` / `.alpha`, what AUTOMATIC1111 and ComfyUI read);
  the file's metadata names the base model (its hash), rank, alpha and method.
- Generation: `apply_loras(unet, [(path, weight), ...])` loads each file once (either layout: diffusers'
  converter reads both) as an adapter named by its hash and sets their weights; `apply_loras(unet, [])` turns
  them off, so the base model's pixels are untouched.

Hand-written: only the glue between peft's layers and diffusers' file converters, which do the real work.

Example:
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> unet = LatentDiffusion.create(tiny_config()).unet
    >>> add_lora(unet, rank=4, alpha=4)
    >>> sorted({k.split(".")[-2] for k in lora_layers(unet)})
    ['lora_A', 'lora_B']
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from kaiga.paths import model_home
from kaiga.request import RequestError

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TRAINING_ADAPTER = "kaiga-training"
LAYOUTS = ("diffusers", "kohya")


class LoraError(RequestError):
    """A LoRA that cannot be found or applied (the request's fault); the message names it and says why."""


def add_lora(unet, rank: int = 8, alpha: float = 8.0, name: str = TRAINING_ADAPTER) -> None:
    """peft LoRA layers (rank, alpha) on `unet`'s attention projections; every other weight frozen."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian",
                                target_modules=list(LORA_TARGETS)), adapter_name=name)
    for param_name, param in unet.named_parameters():
        param.requires_grad_("lora_" in param_name)


def lora_layers(unet, name: str = TRAINING_ADAPTER) -> dict[str, torch.Tensor]:
    """The adapter's weights by module (peft's names: `<module>.lora_A.weight`, `.lora_B.weight`)."""
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(unet, adapter_name=name)


def save_lora(layers: dict[str, torch.Tensor], path, *, rank: int, alpha: float, metadata: dict,
              layout: str = "diffusers", dtype: torch.dtype = torch.float16) -> Path:
    """Write adapter weights `layers` (peft's names) as `.safetensors` in `layout` (diffusers or kohya)."""
    from diffusers.utils import convert_state_dict_to_kohya

    if layout not in LAYOUTS:
        raise LoraError(f"layout: one of {', '.join(LAYOUTS)} (got {layout!r})")
    state = {f"unet.{k}": v.detach().to(dtype).contiguous() for k, v in layers.items()}
    if layout == "kohya":
        state = {k: v.to(dtype).contiguous() for k, v in convert_state_dict_to_kohya(state).items()}
        for key in [k for k in state if k.endswith(".lora_down.weight")]:  # the alpha kohya files carry per module
            state[key.replace(".lora_down.weight", ".alpha")] = torch.tensor(float(alpha), dtype=dtype)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"kaiga": json.dumps({**metadata, "rank": rank, "alpha": alpha, "layout": layout}),
            "ss_network_dim": str(rank), "ss_network_alpha": str(alpha)}  # the keys kohya's tools read
    save_file(state, str(path), metadata=info)
    return path


def lora_info(path) -> dict:
    """What a kaiga LoRA file says of itself (base model, rank, alpha, method); {} for a file from elsewhere."""
    with safe_open(str(path), "pt") as f:
        return json.loads((f.metadata() or {}).get("kaiga", "{}"))


def file_hash(path) -> str:
    """The first 10 hex digits of the file's SHA-256, as A1111 shows a LoRA's hash; read once while the file is
    unchanged (every generation with a LoRA asks for it)."""
    stat = Path(path).stat()
    return _hash_of(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _hash_of(path: str, mtime_ns: int, size: int) -> str:  # the stat in the key: a rewritten file is read again
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]


def loras_dir() -> Path:
    return model_home() / "loras"


def list_loras() -> list[tuple[Path, dict]]:
    """The LoRA files in $KAIGA_HOME/loras, by name, with what each says of itself ({} for a file from elsewhere,
    or one whose header cannot be read)."""
    folder = loras_dir()
    found = []
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        try:
            found.append((path, lora_info(path)))
        except Exception:  # a broken file is listed, not fatal: using it says why
            found.append((path, {}))
    return found


def resolve_lora(name: str) -> Path:
    """A LoRA by name (`$KAIGA_HOME/loras/NAME.safetensors`) or path; LoraError naming it when it is not there."""
    path = Path(name).expanduser()
    if path.suffix in (".pt", ".ckpt", ".bin", ".pth"):
        raise LoraError(f"lora: {name}: a pickle file, which can run code when opened; only .safetensors are read")
    if not path.suffix:
        path = loras_dir() / f"{name}.safetensors"
    if not path.is_file():
        known = sorted(p.stem for p in loras_dir().glob("*.safetensors")) if loras_dir().is_dir() else []
        raise LoraError(f"lora: no LoRA {name!r}" + (f"; $KAIGA_HOME/loras has {', '.join(known)}" if known else
                                                     "; train one with `kaiga finetune`"))
    return path


@dataclass(frozen=True)
class AppliedLora:
    name: str
    path: Path
    weight: float
    hash: str

    def record(self) -> dict:
        return {"name": self.name, "hash": self.hash, "weight": self.weight}


def parse_lora(spec: str) -> tuple[str, float]:
    """NAME[:WEIGHT] -> (NAME, WEIGHT); the weight defaults to 1.

    >>> parse_lora("toy:0.7"), parse_lora("toy")
    (('toy', 0.7), ('toy', 1.0))
    """
    name, sep, weight = spec.rpartition(":") if ":" in spec else (spec, "", "1")
    try:
        value = float(weight)
    except ValueError:
        raise LoraError(f"lora: NAME[:WEIGHT], the weight a number (got {spec!r})") from None
    if not name or not -4.0 <= value <= 4.0:
        raise LoraError(f"lora: NAME[:WEIGHT] with a weight between -4 and 4 (got {spec!r})")
    return name, value


MAX_LORAS = 8


def _named_loras(spec: str) -> list[tuple[str, float, Path]]:
    """(name, weight, file) of each LoRA a request's `lora` field names ("toy:0.8, style"); LoraError else."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if len(parts) > MAX_LORAS:
        raise LoraError(f"lora: at most {MAX_LORAS} LoRAs at once (got {len(parts)})")
    return [(name, weight, resolve_lora(name)) for name, weight in map(parse_lora, parts)]


def requested_loras(spec: str) -> list[AppliedLora]:
    """The LoRAs a request's `lora` field names, each found and hashed (what the record lists); LoraError else."""
    return [AppliedLora(name, path, weight, file_hash(path)) for name, weight, path in _named_loras(spec)]


def check_loras(family: str, spec: str) -> None:
    """The request's `lora` field checked before any work (by the Studio and by the server before queuing): each
    LoRA found, and a model that has a UNet to adapt."""
    if not spec.strip():
        return
    _named_loras(spec)  # found, not a pickle; hashed only when they run
    if family != "diffusion":
        raise LoraError(f"lora: LoRAs adapt a diffusion model's UNet; this is a {family} model")


def apply_loras(unet, loras: list[AppliedLora]) -> None:
    """Load each LoRA into `unet` once (an adapter named by its hash) and make exactly these active, at their
    weights; an empty list turns every adapter off. A file whose modules this UNet lacks (made for another
    architecture) is refused, naming a module it expects."""
    if not loras:
        if getattr(unet, "peft_config", None):
            unet.disable_adapters()
        return
    from diffusers.loaders.lora_pipeline import StableDiffusionLoraLoaderMixin

    loaded = set(getattr(unet, "peft_config", {}) or {})
    for lora in loras:
        adapter = f"lora-{lora.hash}"
        if adapter in loaded:
            continue
        state, alphas = StableDiffusionLoraLoaderMixin.lora_state_dict(str(lora.path))
        if (why := _mismatch(unet, state)) is not None:
            raise LoraError(f"lora: {lora.name} was made for another model: {why}")
        unet.load_lora_adapter(state, network_alphas=alphas, adapter_name=adapter, prefix="unet")
    unet.enable_adapters()
    unet.set_adapters([f"lora-{lora.hash}" for lora in loras], [lora.weight for lora in loras])


def _module_of(key: str) -> str:
    """The UNet module a LoRA file's key adapts, in either of diffusers' spellings (peft's and the older one its
    converter gives kohya files).

    >>> _module_of("unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight")
    'mid_block.attentions.0.transformer_blocks.0.attn1.to_q'
    >>> _module_of("unet.mid_block.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight")
    'mid_block.attentions.0.transformer_blocks.0.attn1.to_out'
    """
    key = key.removeprefix("unet.").replace(".processor.", ".")
    for marker in (".lora_A", ".lora_B", "_lora.", ".lora.", ".lora_down", ".lora_up", ".alpha"):
        if marker in key:
            return key.split(marker)[0]
    return key


def _mismatch(unet, state: dict[str, torch.Tensor]) -> str | None:
    """Why the LoRA weights `state` (diffusers' keys) do not fit `unet`, or None: a module it names that the UNet
    lacks, or a down-projection whose input width is not the module's."""
    modules = {}
    for key, value in state.items():
        if key.startswith("unet."):
            down = key.endswith(("lora_A.weight", "lora.down.weight"))
            modules.setdefault(_module_of(key), value.shape[-1] if down and value.ndim == 2 else None)
    if not modules:
        return "it holds no UNet weights"
    for name, width in sorted(modules.items()):
        try:
            module = unet.get_submodule(name)
        except AttributeError:
            return f"this one has no {name}"
        inner = module[0] if isinstance(module, torch.nn.ModuleList) else module  # to_out: [Linear, Dropout]
        if width is not None and getattr(inner, "in_features", width) != width:
            return f"its {name} takes {width} features, this model's {inner.in_features}"
    return None
