"""The learned 4× upscaler against Lanczos (and bicubic): quality on held-out renders, behaviour on generated
images, and speed, all in one run.

- Held-out renders (issue "Creative controls", item 4): scenes of a stream no training pair uses
  (`kaiga.train.upscaler.HELD_OUT_SEED`) drawn at 64² and at 256²; each method enlarges the 64² one and is
  compared with the 256² one: PSNR (uint8 pixels), SSIM (torchmetrics, Gaussian window) and a perceptual
  distance (LPIPS-style, over the scenes judge's trunk, `PerceptualDistance`; LPIPS's own VGG weights cannot
  be downloaded here). Lower is better for the distance, higher for the others.
- Generated images (the four bundled families; no 256² truth exists for them): how far each enlargement,
  shrunk back to 64² (box filter), is from the image it enlarged (PSNR: an upscaler should add detail, not
  move what is there), and its sharpness (mean gradient magnitude of the 256² result, beside the held-out
  renders' own at 256²).
- Speed: ms per image, 64² → 256², at batch 1 and batch 16, each method in the same run, on `--threads`.

Usage:
    OMP_NUM_THREADS=2 python bench/upscaler.py [--model FOLDER] [--n 200] [--generated 16] [--grid docs/upscaler]
writes bench/results/upscaler.json (or --json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchmetrics.functional.image import structural_similarity_index_measure as ssim

from kaiga.families.diffusion.sharpening import PerceptualDistance
from kaiga.images import contact_sheet
from kaiga.train.upscaler import HELD_OUT_SEED, render_pairs
from kaiga.upscaler import load_upscaler, upscale

RESULTS = Path(__file__).parent / "results" / "upscaler.json"
FAMILIES = ("scenes-diffusion", "scenes-gan", "scenes-vae", "scenes-transformer")
PROMPTS = ("a red car in the city at night", "two yellow dogs on the beach", "a white boat on the beach at sunset",
           "a blue bicycle in the forest, watercolor", "a green truck in the desert in the rain",
           "a black cat in the snow, sketch", "an orange house in the mountains, vintage", "a pink flower, neon")


def _methods(net) -> dict:
    return {
        "bicubic": lambda ims: [im.resize((im.width * 4, im.height * 4), Image.BICUBIC) for im in ims],
        "lanczos": lambda ims: upscale(ims, 4, "lanczos"),
        "learned": lambda ims: upscale(ims, 4, "learned", network=net),
    }


def _tensor(images: list[Image.Image]) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(im.convert("RGB")) for im in images])).permute(0, 3, 1, 2).float()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = (a - b).pow(2).mean((1, 2, 3)).clamp_min(1e-10)
    return 10 * torch.log10(255.0**2 / mse)


def _sharpness(x: torch.Tensor) -> float:
    """Mean gradient magnitude (grey levels per pixel) of uint8-range images [N, 3, H, W]."""
    grey = x.mean(1)
    return float(((grey[:, 1:, :-1] - grey[:, :-1, :-1]).pow(2) + (grey[:, :-1, 1:] - grey[:, :-1, :-1]).pow(2))
                 .sqrt().mean())


def held_out(methods: dict, n: int, perceptual: PerceptualDistance) -> dict:
    low, high = render_pairs(n, HELD_OUT_SEED)
    lows = [Image.fromarray(a) for a in low.permute(0, 2, 3, 1).numpy()]
    truth = high.float()
    out = {"n": n, "truth_sharpness": round(_sharpness(truth), 3)}
    for name, run in methods.items():
        pred = _tensor(run(lows))
        with torch.no_grad():
            dist = torch.cat([perceptual(pred[i : i + 32] / 127.5 - 1, truth[i : i + 32] / 127.5 - 1)[None]
                              for i in range(0, n, 32)]).mean()
        p = _psnr(pred, truth)
        out[name] = {"psnr_db": round(float(p.mean()), 3), "psnr_p10_db": round(float(p.quantile(0.1)), 3),
                     "ssim": round(float(ssim(pred, truth, data_range=255.0)), 4),
                     "perceptual": round(float(dist), 4), "sharpness": round(_sharpness(pred), 3)}
    return out


def generated(methods: dict, per_family: int) -> tuple[dict, dict[str, list[Image.Image]]]:
    from kaiga.studio import Studio

    studio = Studio(device="cpu", watermark=False)
    out, made = {}, {}
    for family in FAMILIES:
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(per_family)]
        images = [studio.generate(prompt, model=family, seed=100 + i)[0].image for i, prompt in enumerate(prompts)]
        made[family] = images
        source = _tensor(images)
        out[family] = {}
        for name, run in methods.items():
            big = _tensor(run(images))
            back = torch.nn.functional.avg_pool2d(big, 4)
            out[family][name] = {"back_psnr_db": round(float(_psnr(back, source).mean()), 3),
                                 "sharpness": round(_sharpness(big), 3)}
    return out, made


def speed(methods: dict, repeats: int = 5) -> dict:
    low, _ = render_pairs(16, HELD_OUT_SEED + 1)
    images = [Image.fromarray(a) for a in low.permute(0, 2, 3, 1).numpy()]
    out = {}
    for name, run in methods.items():
        row = {}
        for batch in (1, 16):
            chunk = images[:batch]
            run(chunk)  # warm-up
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                run(chunk)
                times.append((time.perf_counter() - t) * 1000 / batch)
            row[f"batch{batch}_ms_per_image"] = round(float(np.median(times)), 3)
        out[name] = row
    out["learned_vs_lanczos_batch1"] = round(out["learned"]["batch1_ms_per_image"] /
                                             out["lanczos"]["batch1_ms_per_image"], 2)
    return out


def write_grids(methods: dict, made: dict[str, list[Image.Image]], folder: Path, n_renders: int = 4) -> None:
    """Rows of: the 64² input (nearest), Lanczos, learned, and (renders) the 256² truth."""
    folder.mkdir(parents=True, exist_ok=True)
    low, high = render_pairs(n_renders, HELD_OUT_SEED)
    tiles = []
    for lo, hi in zip(low.permute(0, 2, 3, 1).numpy(), high.permute(0, 2, 3, 1).numpy()):
        im = Image.fromarray(lo)
        tiles += [im.resize((256, 256), Image.NEAREST), *(methods[m]([im])[0] for m in ("lanczos", "learned")),
                  Image.fromarray(hi)]
    contact_sheet(tiles, cols=4).save(folder / "renders.png")
    if not made:
        return
    tiles = []
    for family, images in made.items():
        for im in images[:2]:
            tiles += [im.resize((256, 256), Image.NEAREST), *(methods[m]([im])[0] for m in ("lanczos", "learned"))]
    contact_sheet(tiles, cols=6).save(folder / "generated.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="an upscaler folder (default: the bundled one)")
    ap.add_argument("--n", type=int, default=200, help="held-out render pairs")
    ap.add_argument("--generated", type=int, default=16, help="images per bundled family (0: none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--grid", type=Path, default=None, help="folder for renders.png and generated.png")
    ap.add_argument("--json", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from kaiga.eval.readout import ReadoutNet

    net = load_upscaler(args.model)
    methods = _methods(net)
    result = {"model": str(args.model or "bundled"), "threads": args.threads,
              "parameters": sum(p.numel() for p in net.parameters()),
              "speed": speed(methods),
              "held_out_renders": held_out(methods, args.n, PerceptualDistance(ReadoutNet.load()))}
    made = {}
    if args.generated:
        result["generated"], made = generated(methods, args.generated)
    if args.grid is not None:
        write_grids(methods, made, args.grid)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
