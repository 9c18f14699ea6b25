"""Stable Diffusion "single-file" checkpoints: one ``.safetensors`` in the original CompVis/A1111 layout.

A single-file SD 1.x checkpoint keeps the three networks under the names of the original code:
``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE) and
``cond_stage_model.transformer.text_model.*`` (CLIP text encoder). This is the file that A1111 and
ComfyUI users download and share.

* :func:`save_single_file` writes our model in that layout and puts everything needed to rebuild it
  (component configs, tokenizer, scheduler, our ``info``) in the safetensors metadata under
  ``kaiga.*`` keys, so the one file is a complete kaiga model.
* :func:`load_single_file` reads such a file back from the metadata alone. A file without kaiga
  metadata (a real SD 1.x/2.x checkpoint) holds weights but no configs; diffusers would fetch those
  from the Hugging Face Hub, which offline means the caller must name a diffusers-layout config folder
  (``config_dir``, the CLI's ``--config DIR``).
* :func:`looks_like_sd_single_file` tells such a file by its content (the safetensors header).

Loading holds about one copy of the weights (a folder load's peak): the networks are built on the meta
device and filled one at a time from tensors read one by one with plain file reads (`_read_tensors`),
never the whole file at once.

What is hand-written and why: diffusers ships the original-to-diffusers direction as library code
(``diffusers.loaders.single_file_utils``: ``convert_ldm_unet_checkpoint``, ``convert_ldm_vae_checkpoint``,
``convert_ldm_clip_checkpoint``, ``convert_open_clip_checkpoint``, the renamings ``from_single_file``
applies), and every load here renames through it; only the reading is ours, since ``from_single_file``
takes the whole checkpoint in memory. The opposite direction (diffusers to original) exists only as a script
in the diffusers repository (``scripts/convert_diffusers_to_original_stable_diffusion.py``), which is
not installed and is hard-wired to SD 1.x's four blocks of two layers. ``_unet_to_ldm`` and
``_vae_to_ldm`` below are therefore our own mapping, derived from the block structure in the model
config (any number of blocks and ``layers_per_block``), reusing only the library's table of fixed
renames (``DIFFUSERS_TO_LDM_MAPPING``). Saving then loading through the library converter checks the
two directions against each other (see ``tests/families/diffusion/test_single_file.py``).

Example:
    >>> import tempfile, torch
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> m = LatentDiffusion.create(tiny_config()).eval()
    >>> path = save_single_file(m, Path(tempfile.mkdtemp()) / "tiny.safetensors")
    >>> looks_like_sd_single_file(path)
    True
    >>> back = load_single_file(path)
    >>> ids = m.tokenize(["a red car"])
    >>> torch.equal(back.encode_text(ids), m.encode_text(ids))
    True
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    DIFFUSERS_DEFAULT_PIPELINE_PATHS,
    DIFFUSERS_TO_LDM_MAPPING,
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
    infer_diffusers_model_type,
    is_open_clip_model,
)
from safetensors.torch import save_file
from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel

from kaiga.families.diffusion.model import KAIGA_JSON, LatentDiffusion
from kaiga.safetensors_header import TensorEntry, read_header, tensor_entries

__all__ = [
    "FORMAT",
    "SingleFileError",
    "load_single_file",
    "looks_like_sd_single_file",
    "original_layout",
    "save_single_file",
]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."  # + "text_model.<transformers CLIPTextModel name>"
FORMAT = "kaiga-sd1-single-file/1"  # value of the "kaiga.format" metadata key


class SingleFileError(ValueError):
    """A single-file checkpoint that this module cannot read or write, with the reason and the way out."""


# --- detection ------------------------------------------------------------------------------------
def looks_like_sd_single_file(path: str | Path) -> bool:
    """True when `path` is a safetensors file whose tensors use the original SD layout (``model.diffusion_model.*``).

    Only the header is read, so this is cheap even for multi-GB files; the file name is not looked at.
    """
    header = read_header(path)
    return header is not None and any(k.startswith(UNET_PREFIX) for k in header if k != "__metadata__")


def _metadata(path: str | Path) -> dict[str, str]:
    header = read_header(path)
    meta = (header or {}).get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


# --- diffusers -> original names (hand-written, see the module docstring) --------------------------
_RESNET_TO_LDM = {  # UNet ResnetBlock2D -> ldm ResBlock
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTN_TO_LDM = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _resnet(rest: str, table: dict[str, str]) -> str:
    for new, old in table.items():
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def _layers_per_block(config: dict) -> int:
    lpb = config["layers_per_block"]
    if not isinstance(lpb, int):
        raise SingleFileError(f"layers_per_block={lpb!r} differs between blocks; the original layout needs one number")
    return lpb


def _unet_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """UNet2DConditionModel names -> ``openaimodel.UNetModel`` names (without the ``model.diffusion_model.`` prefix).

    Original layout: ``input_blocks.0`` is conv_in; then per down block `lpb` × [ResBlock, SpatialTransformer?]
    and, except for the last block, one ``Downsample`` (``.0.op``); ``middle_block`` = ResBlock, transformer,
    ResBlock; ``output_blocks`` hold `lpb + 1` × [ResBlock, transformer?, Upsample?] per up block.
    """
    lpb = _layers_per_block(config)
    fixed = dict(DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"])
    if config.get("class_embed_type") in ("timestep", "projection"):
        fixed.update(DIFFUSERS_TO_LDM_MAPPING["unet"]["class_embed_type"])
    if config.get("addition_embed_type") == "text_time":
        fixed.update(DIFFUSERS_TO_LDM_MAPPING["unet"]["addition_embed_type"])
    up_with_attn = {int(m.group(1)) for k in state if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))}

    def name(k: str) -> str:
        if k in fixed:
            return fixed[k]
        if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", k):
            b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            i = 1 + b * (lpb + 1) + j
            if kind == "resnets":
                return f"input_blocks.{i}.0.{_resnet(rest, _RESNET_TO_LDM)}"
            return f"input_blocks.{i}.1.{rest}"
        if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", k):
            return f"input_blocks.{1 + int(m[1]) * (lpb + 1) + lpb}.0.op.{m[2]}"
        if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", k):
            return f"middle_block.{2 * int(m[1])}.{_resnet(m[2], _RESNET_TO_LDM)}"
        if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", k):
            return f"middle_block.1.{m[1]}"
        if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", k):
            b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            i = b * (lpb + 1) + j
            if kind == "resnets":
                return f"output_blocks.{i}.0.{_resnet(rest, _RESNET_TO_LDM)}"
            return f"output_blocks.{i}.1.{rest}"
        if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", k):
            b = int(m[1])
            return f"output_blocks.{b * (lpb + 1) + lpb}.{2 if b in up_with_attn else 1}.conv.{m[2]}"
        raise SingleFileError(f"UNet weight {k!r} has no name in the original SD layout (unsupported UNet feature)")

    return {name(k): v for k, v in state.items()}


def _vae_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """AutoencoderKL names -> ``ldm.models.autoencoder`` names (without the ``first_stage_model.`` prefix).

    The decoder's up blocks are numbered from the lowest resolution in diffusers and from the highest in
    the original code; mid-block attention projections are 1×1 convolutions there, linears here.
    """
    fixed = DIFFUSERS_TO_LDM_MAPPING["vae"]
    n_up = len(config["up_block_types"])
    vae_resnet = {"conv_shortcut": "nin_shortcut"}
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k in fixed:
            out[fixed[k]] = v
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", k):
            out[f"encoder.down.{m[1]}.block.{m[2]}.{_resnet(m[3], vae_resnet)}"] = v
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", k):
            out[f"encoder.down.{m[1]}.downsample.conv.{m[2]}"] = v
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", k):
            out[f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2]}.{_resnet(m[3], vae_resnet)}"] = v
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", k):
            out[f"decoder.up.{n_up - 1 - int(m[1])}.upsample.conv.{m[2]}"] = v
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", k):
            out[f"{m[1]}.mid.block_{int(m[2]) + 1}.{_resnet(m[3], vae_resnet)}"] = v
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", k):
            rest = _resnet(m[2], _VAE_ATTN_TO_LDM)
            if v.ndim == 2:  # linear [out, in] -> 1×1 conv [out, in, 1, 1]
                v = v[:, :, None, None]
            out[f"{m[1]}.mid.attn_1.{rest}"] = v
        else:
            raise SingleFileError(f"VAE weight {k!r} has no name in the original SD layout (unsupported VAE feature)")
    return out


def _text_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CLIPTextModel names -> ``cond_stage_model.transformer.text_model.*`` (transformers 4.x and 5.x naming)."""
    return {f"{TEXT_PREFIX}text_model.{k.removeprefix('text_model.')}": v for k, v in state.items()}


def _config_dict(config: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def _tokenizer_files(tokenizer: Any) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        files = {p.name: p.read_text(encoding="utf-8") for p in Path(tmp).iterdir() if p.suffix == ".json"}
    if "tokenizer.json" not in files:
        raise SingleFileError("the tokenizer wrote no tokenizer.json (not a fast tokenizer), so it cannot go in the "
                              "file's metadata")
    return files


def original_layout(unet, vae, text_encoder, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The three networks' tensors under their original SD 1.x names (on the CPU; views where nothing changes)."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, converted in (
        (UNET_PREFIX, _unet_to_ldm(unet.state_dict(), _config_dict(unet.config))),
        (VAE_PREFIX, _vae_to_ldm(vae.state_dict(), _config_dict(vae.config))),
        ("", _text_to_ldm(text_encoder.state_dict())),
    ):
        for k, v in converted.items():
            v = v.detach().to("cpu")
            if dtype is not None and v.is_floating_point():
                v = v.to(dtype)
            tensors[prefix + k] = v.contiguous()
    return tensors


def save_single_file(model: LatentDiffusion, path: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write `model` as one SD 1.x-layout ``.safetensors`` with everything to rebuild it in ``kaiga.*`` metadata.

    `dtype=torch.float16` halves the file, as in :meth:`LatentDiffusion.save`. Returns the path.
    """
    path = Path(path)
    unet_cfg, vae_cfg = _config_dict(model.unet.config), _config_dict(model.vae.config)
    tensors = original_layout(model.unet, model.vae, model.text_encoder, dtype)
    tok = _tokenizer_files(model.tokenizer)
    metadata = {
        "format": "pt",
        "kaiga.format": FORMAT,
        "kaiga.unet_config": json.dumps(unet_cfg),
        "kaiga.vae_config": json.dumps(vae_cfg),
        "kaiga.text_config": model.text_encoder.config.to_json_string(use_diff=False),
        "kaiga.scheduler_config": json.dumps(dict(model.scheduler_config)),
        "kaiga.tokenizer": tok.pop("tokenizer.json"),
        "kaiga.tokenizer_files": json.dumps(tok),  # tokenizer_config.json etc.: special tokens, max length
        "kaiga.info": json.dumps(model.info),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


# --- loading --------------------------------------------------------------------------------------
# The safetensors format's dtype names.
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


@dataclass
class _Configs:
    """Everything but the weights: from the file's kaiga metadata, or from a diffusers config folder."""

    unet: dict[str, Any]
    vae: dict[str, Any]
    text: CLIPTextConfig
    scheduler: dict[str, Any]
    tokenizer: Callable[[], Any]
    info: dict | None  # None: a Stable Diffusion model from elsewhere (see LatentDiffusion.from_components)


def _read_tensors(path: Path, entries: dict[str, TensorEntry], names: list[str],
                  dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Tensors `names` of `path`, floating ones as `dtype`, each read into fresh memory with plain reads.

    Nothing of the file is mapped and no tensor is held twice except the one being cast, so loading
    holds about one copy of the weights, as a folder load does (a whole-file load held the file's
    mapping beside the converted copy: twice the model at its peak). Fresh memory is also aligned,
    which keeps the loaded model's outputs bit-identical to the saved one's (see `_materialize`).
    """
    out: dict[str, torch.Tensor] = {}
    with open(path, "rb", buffering=0) as f:
        for name in sorted(names, key=lambda n: entries[n].start):
            e = entries[name]
            if e.dtype not in _DTYPES:
                raise SingleFileError(f"{path.name}: tensor {name!r} has dtype {e.dtype}, which kaiga does not load")
            t = torch.empty(e.shape, dtype=_DTYPES[e.dtype])
            raw = t.reshape(-1).view(torch.uint8).numpy()
            if raw.nbytes != e.end - e.start:
                raise SingleFileError(f"{path.name}: tensor {name!r} holds {e.end - e.start} bytes, "
                                      f"not the {raw.nbytes} of {e.dtype} {list(e.shape)} (a damaged file?)")
            f.seek(e.start)
            done = 0
            while done < raw.nbytes:
                n = f.readinto(memoryview(raw)[done:])
                if not n:
                    raise SingleFileError(f"{path.name} ends inside tensor {name!r} (a truncated download?)")
                done += n
            out[name] = t.to(dtype) if t.is_floating_point() and t.dtype != dtype else t
    return out


def _split(names: list[str]) -> dict[str, list[str]]:
    """The names of the UNet, VAE and text-encoder tensors; EMA copies and schedule buffers are left out."""
    parts: dict[str, list[str]] = {"unet": [], "vae": [], "text": []}
    prefixes = (("unet", UNET_PREFIX), ("vae", VAE_PREFIX), ("text", "cond_stage_model."))
    for k in names:
        for part, prefix in prefixes:
            if k.startswith(prefix):
                parts[part].append(k)
                break
    return parts


def _text_state(checkpoint: dict[str, torch.Tensor], text_encoder: CLIPTextModel) -> dict[str, torch.Tensor]:
    """Original text-encoder names -> CLIPTextModel's: OpenAI CLIP (SD 1.x) or OpenCLIP (SD 2.x), as from_single_file."""
    if is_open_clip_model(checkpoint):
        state = convert_open_clip_checkpoint(text_encoder, checkpoint, prefix="cond_stage_model.model.")
    else:
        state = convert_ldm_clip_checkpoint(checkpoint)  # -> "text_model.*"
    if not hasattr(text_encoder, "text_model"):  # transformers >= 5.6 flattened CLIPTextModel
        state = {k.removeprefix("text_model."): v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.endswith("embeddings.position_ids")}  # a buffer older files carry


def _fill(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str, path: Path, lenient: bool) -> None:
    """Put `state`'s tensors in place of the meta parameters; every parameter must come from the file.

    `lenient`: names the module lacks are dropped (OpenCLIP's logit scale and the like); otherwise they
    mean the configs do not describe this checkpoint.
    """
    try:
        missing, unexpected = module.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as e:  # shapes that differ
        raise SingleFileError(f"{path.name}: the {what} weights do not fit the configs: {e}") from None
    if missing or (unexpected and not lenient):
        names = missing or unexpected
        raise SingleFileError(f"{path.name}: the {what} weights {names[:5]}{' ...' if len(names) > 5 else ''} are "
                              f"{'missing from the checkpoint' if missing else 'not in the model'} "
                              "(do the configs match it?)")


def _materialize(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Give every floating tensor `dtype` and its own 64-byte-aligned storage.

    oneDNN/MKL kernels sum in a different order on unaligned memory: outputs then drift by ~1e-7 from
    the same weights in fresh memory. `_read_tensors` already gives the file's tensors both; this covers
    buffers the modules make themselves.
    """
    with torch.no_grad():
        for t in (*module.parameters(), *module.buffers()):
            want = dtype if t.is_floating_point() else t.dtype
            if t.dtype != want or t.data_ptr() % 64:
                t.data = t.data.to(want, copy=True)


def _configs_from_metadata(path: Path, meta: dict[str, str]) -> _Configs:
    fmt = meta.get("kaiga.format", FORMAT)
    if fmt != FORMAT:
        raise SingleFileError(f"{path.name} was written as {fmt!r}; this kaiga reads {FORMAT!r}")
    try:
        tok_files = {"tokenizer.json": meta["kaiga.tokenizer"], **json.loads(meta.get("kaiga.tokenizer_files", "{}"))}
        configs = _Configs(json.loads(meta["kaiga.unet_config"]), json.loads(meta["kaiga.vae_config"]),
                           CLIPTextConfig.from_dict(json.loads(meta["kaiga.text_config"])),
                           json.loads(meta["kaiga.scheduler_config"]), lambda: _tokenizer_from(tok_files),
                           json.loads(meta.get("kaiga.info", "{}")) or None)
    except (KeyError, ValueError) as e:
        raise SingleFileError(f"{path.name}: incomplete or unreadable kaiga metadata ({e})") from e
    return configs


def _tokenizer_from(files: dict[str, str]):
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            (Path(tmp) / Path(name).name).write_text(text, encoding="utf-8")
        return AutoTokenizer.from_pretrained(tmp, local_files_only=True)


def _configs_from_folder(config_dir: Path) -> _Configs:
    if not config_dir.is_dir():
        raise SingleFileError(f"config folder {config_dir} does not exist")
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        if not (config_dir / sub).is_dir():
            raise SingleFileError(f"config folder {config_dir} has no {sub}/ (a diffusers-layout folder is needed)")
    try:
        info_path = config_dir / KAIGA_JSON
        return _Configs(
            dict(UNet2DConditionModel.load_config(config_dir / "unet", local_files_only=True)),
            dict(AutoencoderKL.load_config(config_dir / "vae", local_files_only=True)),
            CLIPTextConfig.from_pretrained(config_dir / "text_encoder", local_files_only=True),
            dict(DDPMScheduler.load_config(config_dir / "scheduler", local_files_only=True)),
            lambda: AutoTokenizer.from_pretrained(config_dir / "tokenizer", local_files_only=True),
            json.loads(info_path.read_text()) if info_path.exists() else None)
    except (OSError, ValueError) as e:
        raise SingleFileError(f"config folder {config_dir}: unreadable configs ({e})") from None


def _offline_help(path: Path, entries: dict[str, TensorEntry]) -> str:
    try:  # diffusers' guess reads only names and shapes: tensors on the meta device suffice
        kind = infer_diffusers_model_type({k: torch.empty(e.shape, device="meta") for k, e in entries.items()})
        repo = DIFFUSERS_DEFAULT_PIPELINE_PATHS[kind]["pretrained_model_name_or_path"]
        guess = f" diffusers takes it for an SD {kind!r} checkpoint, whose configs it would fetch from {repo}."
    except (KeyError, ValueError, TypeError, IndexError, AttributeError):  # a guess for the message only
        guess = ""
    return (f"{path.name} is a Stable Diffusion single-file checkpoint without kaiga metadata: it holds the weights "
            "but not the model configs, text-encoder config, tokenizer or scheduler, which diffusers would download "
            f"from the Hugging Face Hub, and kaiga works offline.{guess} Pass a diffusers-layout config folder "
            "for this model version (--config DIR; a folder with unet/, vae/, text_encoder/ configs, tokenizer/ and "
            "scheduler/, e.g. a copy of that Hub repository without its weight files).")


def load_single_file(path: str | Path, config_dir: str | Path | None = None,
                     dtype: torch.dtype = torch.float32) -> LatentDiffusion:
    """Load an SD single-file ``.safetensors`` checkpoint offline, holding about one copy of the weights.

    A file written by :func:`save_single_file` rebuilds from its own metadata (`config_dir` is not needed and
    is ignored). Any other SD 1.x/2.x file takes the configs, tokenizer and scheduler of `config_dir`, a
    diffusers-layout folder; without one this raises :class:`SingleFileError`. Either way the networks are
    built on the meta device, then filled one at a time with the file's tensors, read one by one and
    renamed by diffusers' own converters (those of ``from_single_file``).
    """
    path = Path(path)
    if not path.is_file():
        raise SingleFileError(f"{path} is not a file")
    entries = tensor_entries(path)
    if entries is None:
        raise SingleFileError(f"{path.name} is not a readable safetensors file")
    if any(k.startswith("conditioner.embedders.") for k in entries):
        raise SingleFileError(f"{path.name} is an SDXL-style checkpoint (two text encoders, size conditioning); "
                              "kaiga's latent diffusion family loads SD 1.x/2.x only")
    parts = _split(list(entries))
    if not parts["unet"]:
        raise SingleFileError(f"{path.name} has no {UNET_PREFIX}* weights: "
                              "not a Stable Diffusion single-file checkpoint")
    meta = _metadata(path)
    if "kaiga.unet_config" in meta:
        configs = _configs_from_metadata(path, meta)
    elif config_dir is None:
        raise SingleFileError(_offline_help(path, entries))
    else:
        configs = _configs_from_folder(Path(config_dir))

    with init_empty_weights():  # parameters on meta; `_fill` puts the file's in their place
        unet = UNet2DConditionModel.from_config(configs.unet)
        vae = AutoencoderKL.from_config(configs.vae)
        text_encoder = CLIPTextModel(configs.text)
    networks = (
        ("unet", unet, "UNet", lambda sd: convert_ldm_unet_checkpoint(sd, dict(unet.config))),
        ("vae", vae, "VAE", lambda sd: convert_ldm_vae_checkpoint(sd, dict(vae.config))),
        ("text", text_encoder, "text encoder", lambda sd: _text_state(sd, text_encoder)),
    )
    for part, module, what, convert in networks:  # one network's tensors in memory at a time, beside the built ones
        if not parts[part]:
            raise SingleFileError(f"{path.name} has no {what} weights")
        _fill(module, convert(_read_tensors(path, entries, parts[part], dtype)), what, path, lenient=part == "text")
        _materialize(module, dtype)
    return LatentDiffusion.from_components(unet, vae, text_encoder, configs.tokenizer(), configs.scheduler,
                                           configs.info)
