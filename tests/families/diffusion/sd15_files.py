"""Stable Diffusion 1.5 as a user downloads it, with random weights: its published configs, and writers
for the three forms kaiga must load (a diffusers folder, an fp16-variant-only folder, a single file in
the original CompVis/A1111 key layout), at full size or at tiny widths with the same block structure.

The configs are those of the `stable-diffusion-v1-5` repository's `unet/`, `vae/`, `text_encoder/`,
`scheduler/` and `model_index.json`. The tokenizer is a CLIP tokenizer (same class, special tokens and
77-token length) over the 512 byte-level symbols only, since CLIP's 49,408-entry BPE vocabulary cannot
be downloaded here: every character is a token, so a prompt of 80 characters already exceeds 77 tokens.

Run as a script, in a process of its own (the slow tests do, to keep multi-GB models out of pytest's):
    python tests/families/diffusion/sd15_files.py write OUT_DIR            # the full-size files
    python tests/families/diffusion/sd15_files.py load MODEL [CONFIG] OUT  # load, sample, report peak memory
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

UNET = {
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False, "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
VAE = {
    "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "norm_num_groups": 32, "out_channels": 3, "sample_size": 512, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
TEXT = {  # CLIP ViT-L/14's text tower
    "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
    "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": 768, "initializer_factor": 1.0,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
    "model_type": "clip_text_model", "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
    "projection_dim": 768, "vocab_size": 49408,
}
SCHEDULER = {
    "_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
    "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "trained_betas": None, "clip_sample": False,
}
MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.6.0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"], "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def tiny_configs() -> tuple[dict, dict, dict]:
    """SD 1.5's block structure (4 UNet blocks of 2 layers, a VAE of factor 8) at widths that build in a blink."""
    unet = {**UNET, "block_out_channels": [8, 8, 16, 16], "cross_attention_dim": 32, "attention_head_dim": 2,
            "norm_num_groups": 4, "sample_size": 8}
    vae = {**VAE, "block_out_channels": [4, 8, 8, 8], "norm_num_groups": 4, "sample_size": 64}
    text = {**TEXT, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "projection_dim": 32, "vocab_size": 1000}
    return unet, vae, text


def clip_tokenizer():
    """A CLIPTokenizer (77 tokens, CLIP's special tokens) over byte-level single characters, built offline."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())
    words = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={w: i for i, w in enumerate(words)}, merges=[], model_max_length=77)


def build(unet_config: dict, vae_config: dict, text_config: dict, seed: int = 0):
    """The three networks with their libraries' random initialisation."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(unet_config)
    vae = AutoencoderKL.from_config(vae_config)
    text_encoder = CLIPTextModel(CLIPTextConfig.from_dict(text_config))
    return unet.eval(), vae.eval(), text_encoder.eval()


def write_folder(folder: Path, unet, vae, text_encoder, tokenizer, variant: str | None = None) -> Path:
    """A diffusers folder as on the Hub (no kaiga.json), weights named for `variant` if given."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
        module.save_pretrained(folder / name, safe_serialization=True, variant=variant)
    tokenizer.save_pretrained(folder / "tokenizer")
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER, indent=2))
    (folder / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2))
    return folder


def write_single_file(path: Path, unet, vae, text_encoder) -> Path:
    """The weights in the original layout and nothing else, as a downloaded `v1-5-pruned.safetensors`."""
    from safetensors.torch import save_file

    from kaiga.families.diffusion.single_file import original_layout

    save_file(original_layout(unet, vae, text_encoder), str(path), metadata={"format": "pt"})
    return path


def variant_only_copy(folder: Path, out: Path, variant: str = "fp16") -> Path:
    """`folder` with every weight file renamed `*.{variant}.safetensors` (hard links: no second copy on disk)."""
    for src in folder.rglob("*"):
        dst = out / src.relative_to(folder)
        if src.is_dir():
            dst.mkdir(parents=True, exist_ok=True)
        elif src.suffix == ".safetensors":
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dst.with_name(f"{src.stem}.{variant}.safetensors"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    return out


def write_full_size(out: Path) -> dict[str, Path]:
    """SD 1.5 at full size, stored in float16 (~2 GB): `folder`, `fp16_folder` (variant files only), `single_file`."""
    import torch

    t0 = time.perf_counter()
    unet, vae, text_encoder = build(UNET, VAE, TEXT)
    built = time.perf_counter()
    for m in (unet, vae, text_encoder):
        m.to(torch.float16)
    paths = {"folder": write_folder(out / "sd15", unet, vae, text_encoder, clip_tokenizer())}
    paths["single_file"] = write_single_file(out / "v1-5-pruned.safetensors", unet, vae, text_encoder)
    paths["fp16_folder"] = variant_only_copy(paths["folder"], out / "sd15-fp16")
    print(json.dumps({"build_s": round(built - t0, 1), "save_s": round(time.perf_counter() - built, 1),
                      "params": sum(p.numel() for m in (unet, vae, text_encoder) for p in m.parameters())}))
    return paths


def load_and_sample(model: str, config_dir: str | None, out: Path) -> dict:
    """Load `model` as kaiga does, note the peak memory (RSS), then make one 64² image (1 step, guidance 7.5,
    seed 1) into `out` (.npy) and note it again. Returns the figures and the loaded model's info."""
    import resource

    import numpy as np
    import torch

    from kaiga.families.diffusion.generate import sample
    from kaiga.model_files import load_model, resolve_model
    from kaiga.request import GenerationRequest

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    m = load_model(resolve_model(model), torch.device("cpu"), Path(config_dir) if config_dir else None)
    loaded = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    image = sample(m, GenerationRequest(prompt="a red car", width=64, height=64, steps=1, guidance=7.5), [1])[0]
    np.save(out, np.asarray(image))
    # After a forward pass too: a folder load may leave float32 weights mapped from the file, resident only
    # once they are used.
    run_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_mb": peak // 1024, "run_peak_mb": run_peak // 1024, "imports_mb": before // 1024,
            "load_s": round(loaded - t0, 1),
            "sample_s": round(time.perf_counter() - loaded, 1), "info": m.info,
            "params": sum(p.numel() for p in m.parameters())}


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write_full_size(Path(sys.argv[2]))
    else:
        *model, out = sys.argv[2:]
        print(json.dumps(load_and_sample(model[0], model[1] if len(model) > 1 else None, Path(out))))
