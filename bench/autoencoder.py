"""How well an autoencoder keeps a render: PSNR, reconstruction FID against the noise floor, and a grid.

The latent diffusion model can never be sharper than its autoencoder's round trip, so this is the
ceiling of the default model's pictures (issue "A default model people would show": ≥ 30 dB PSNR,
reconstruction FID within 1.1× of the floor). Renders from seeds no training set uses
(`kaiga.eval.fidelity`'s PROMPT_SEED) go through encode → latent mean → decode; then

- PSNR per image on the uint8 pixels, mean and 10th percentile over the set;
- reconstruction FID: the reconstructions against `n` other held-out renders (REFERENCE_SEED), in the
  judge's features, beside the floor (the renders themselves against the same reference set). The
  sharp recipe trains on a perceptual distance over the same judge's trunk, so this FID is not blind to
  the training objective; PSNR and the grid are;
- decode time per image at batch 16 (this machine, this run).

Usage:
    OMP_NUM_THREADS=2 python bench/autoencoder.py --model kaiga/bundled/scenes-diffusion --name v5 \\
        --grid docs/autoencoder/v5.png
writes bench/results/autoencoder.json (one entry per --name, others kept).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL
from PIL import Image

from kaiga.data.dataset import scene_example
from kaiga.eval.fidelity import PROMPT_SEED, REFERENCE_SEED, fidelity_scores
from kaiga.eval.readout import ReadoutNet, features
from kaiga.eval.readout_train import render_pool

RESULTS = Path(__file__).parent / "results" / "autoencoder.json"


def load_vae(folder: Path) -> AutoencoderKL:
    folder = folder / "vae" if (folder / "vae").is_dir() else folder
    return AutoencoderKL.from_pretrained(folder, local_files_only=True, torch_dtype=torch.float32).eval()


@torch.no_grad()
def round_trip(vae: AutoencoderKL, pixels: np.ndarray, batch: int = 64) -> np.ndarray:
    """uint8 [N, 64, 64, 3] through encode (latent mean) and decode, back to uint8."""
    out = []
    for i in range(0, len(pixels), batch):
        x = torch.from_numpy(pixels[i : i + batch]).permute(0, 3, 1, 2).float() / 127.5 - 1
        y = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
        out.append(((y + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB of uint8 [N, H, W, 3] pairs."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


@torch.no_grad()
def decode_ms(vae: AutoencoderKL, batch: int = 16, repeats: int = 5) -> float:
    c, f = vae.config.latent_channels, 2 ** (len(vae.config.block_out_channels) - 1)
    z = torch.randn(batch, c, 64 // f, 64 // f)
    vae.decode(z)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        vae.decode(z)
        best = min(best, time.perf_counter() - t)
    return 1000 * best / batch


def contact_sheet(originals: np.ndarray, recons: np.ndarray, k: int = 16) -> Image.Image:
    """Row pairs: 8 renders above their reconstructions, twice, enlarged 3× with nearest neighbours."""
    rows = []
    for start in range(0, k, 8):
        rows += [np.concatenate(list(originals[start : start + 8]), axis=1),
                 np.concatenate(list(recons[start : start + 8]), axis=1)]
    sheet = Image.fromarray(np.concatenate(rows, axis=0))
    return sheet.resize((sheet.width * 3, sheet.height * 3), Image.NEAREST)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="model folder or autoencoder run (holds vae/)")
    ap.add_argument("--name", required=True, help="key in bench/results/autoencoder.json")
    ap.add_argument("--n", type=int, default=1000, help="held-out renders (and as many reference renders)")
    ap.add_argument("--grid", type=Path, default=None, help="write the contact sheet here")
    args = ap.parse_args()

    vae = load_vae(args.model)
    originals = np.stack([np.asarray(scene_example(i, PROMPT_SEED, split="train", n_captions=1)[0])
                          for i in range(args.n)])
    reference = render_pool(args.n, seed=REFERENCE_SEED, split="train").pixels
    recons = round_trip(vae, originals)
    p = psnr(originals, recons)
    judge = ReadoutNet.load()
    f_ref, f_orig, f_rec = (features(judge, a) for a in (reference, originals, recons))
    rfid, floor = fidelity_scores(f_ref, f_rec).fid, fidelity_scores(f_ref, f_orig).fid
    result = {
        "model": str(args.model), "n": args.n,
        "latent": [vae.config.latent_channels, 64 // 2 ** (len(vae.config.block_out_channels) - 1)],
        "parameters": sum(q.numel() for q in vae.parameters()),
        "psnr_mean": round(float(p.mean()), 2), "psnr_p10": round(float(np.percentile(p, 10)), 2),
        "rfid": round(rfid, 3), "fid_floor": round(floor, 3), "rfid_over_floor": round(rfid / floor, 3),
        "decode_ms_per_image_batch16": round(decode_ms(vae), 2), "threads": torch.get_num_threads(),
    }
    if args.grid is not None:
        args.grid.parent.mkdir(parents=True, exist_ok=True)
        contact_sheet(originals, recons).save(args.grid)
        result["grid"] = str(args.grid)
    all_results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    all_results[args.name] = result
    RESULTS.write_text(json.dumps(all_results, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
