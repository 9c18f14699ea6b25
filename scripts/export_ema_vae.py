"""The EMA autoencoder of a training run's last checkpoint, saved as a diffusers `vae/` folder to measure it.

A run's exported `vae/` is written when the run ends; a run stopped across sessions (scripts/train_v6.sh on
the CPU) has only its checkpoint. This loads the run's `vae/` config, puts the checkpoint's EMA weights
(`vae.*` keys of checkpoint/ema.safetensors) into it, and saves OUT/vae, which bench/autoencoder.py reads.
A run restored from a compact checkpoint (scripts/carry_checkpoint.sh) has no `vae/` yet: its config is then
the default preset's autoencoder with the latent channels the checkpoint's weights have.

Usage:
    python scripts/export_ema_vae.py runs/ae6-c8 /tmp/ae6-c8-now
    python bench/autoencoder.py --model /tmp/ae6-c8-now --name ae6-c8-STEP --grid docs/autoencoder/ae6-c8.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from diffusers import AutoencoderKL
from safetensors.torch import load_file


def main(run: Path, out: Path) -> None:
    ema = load_file(run / "checkpoint" / "ema.safetensors")
    if (run / "vae").is_dir():
        vae = AutoencoderKL.from_pretrained(run / "vae", local_files_only=True)
    else:
        from dataclasses import replace

        from kaiga.families.diffusion.config import build_vae
        from kaiga.train.commands import diffusion_config

        channels = ema["vae.decoder.conv_in.weight"].shape[1]
        vae = build_vae(replace(diffusion_config("default").vae, latent_channels=channels))
    vae.load_state_dict({k.removeprefix("vae."): v.float() for k, v in ema.items() if k.startswith("vae.")}, strict=True)
    vae.save_pretrained(out / "vae")
    step = json.loads((run / "checkpoint" / "state.json").read_text())["step"]
    print(f"{out / 'vae'}: the EMA weights of {run} at step {step}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
