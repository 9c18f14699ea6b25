"""How well kaiga's invisible watermark survives, on images of all four families, beside invisible-watermark.

Usage:
    OMP_NUM_THREADS=1 python bench/watermark.py [--per-family 24] [--negatives 600] [--negatives-whole 5000] \\
        [--json bench/results/watermark.json] [--picture docs/trust/watermark.png]

Marked images: `--per-family` outputs of each bundled model (scenes-diffusion, -gan, -vae, -transformer; prompts
from the scenes captions, seeds 0..), at their native 64×64, plus flat images (white, black, saturated
colours: the hardest case), each marked with a random payload. One row per attack (`kaiga.provenance.attacks`:
clean PNG, JPEG quality 50, a 0.5× resize, a 10 % crop, Gaussian noise σ 0.02, and two more): bit accuracy of
the reading against the codeword written (at the placement `detect` chose), detection rate (p ≤ 0.001), the
payload read exactly. PSNR of marked against unmarked. False positives: `--negatives` images kaiga did not
mark (scenes renders of another seed, unmarked model outputs, flat colours, noise and gradient textures),
each attacked by a random row's attack, through the same `detect`.

invisible-watermark (SDXL's, `pip install --no-deps invisible-watermark==0.2.0`: its opencv-python pin would
replace the headless OpenCV kaiga pins) refuses images under 256×256, so beside it both are measured on the
same images enlarged 4× to 256×256 (kaiga's mark is written at 64×64 and enlarged with the image, as
`--upscale 4` does; invisible-watermark's dwtDct is written at 256×256 with 32 bits).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kaiga.data.dataset import scene_example
from kaiga.provenance.attacks import ATTACKS
from kaiga.provenance.watermark import codeword, detect, embed, load_network
from kaiga.version import __version__

FAMILIES = ("scenes-diffusion", "scenes-gan", "scenes-vae", "scenes-transformer")


def model_images(per_family: int, seed: int = 0) -> list[tuple[str, Image.Image]]:
    from kaiga.pipelines.text_to_image import text_to_image
    from kaiga.request import GenerationRequest
    from kaiga.studio import Studio

    studio = Studio()
    prompts = [scene_example(i, 777)[1][0] for i in range(per_family)]
    out = []
    for name in FAMILIES:
        model = studio.load(name).model
        for i, prompt in enumerate(prompts):  # the raw model output: the Studio would already mark it
            out.append((name, text_to_image(model, GenerationRequest(prompt=prompt, model=name), [seed + i])[0]))
    return out


def flat_images() -> list[tuple[str, Image.Image]]:
    colours = [(255, 255, 255), (0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128), (250, 220, 40),
               (30, 120, 220)]
    return [("flat", Image.new("RGB", (64, 64), c)) for c in colours]


def negatives(n: int, seed: int = 5) -> list[tuple[str, Image.Image]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append(("render", scene_example(i, 4242)[0]))
        elif kind == 1:
            out.append(("flat", Image.new("RGB", (64, 64), tuple(int(v) for v in rng.integers(0, 256, 3)))))
        elif kind == 2:
            noise = rng.normal(128, rng.uniform(2, 60), (64, 64, 3)).clip(0, 255).astype(np.uint8)
            out.append(("noise", Image.fromarray(noise)))
        else:
            ramp = np.linspace(0, 1, 64)
            a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            g = (a[None, None] + (b - a)[None, None] * ramp[None, :, None] * ramp[:, None, None]).astype(np.uint8)
            out.append(("gradient", Image.fromarray(g).rotate(float(rng.uniform(0, 360)))))
    return out


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a, np.float64) / 255, np.asarray(b, np.float64) / 255
    mse = ((x - y) ** 2).mean()
    return float("inf") if mse == 0 else float(-10 * np.log10(mse))


def kaiga_rows(marked: list[tuple[str, Image.Image, int]], attacks: list[str]) -> list[dict]:
    rows = []
    for attack in attacks:
        accuracy, found, exact, t0 = [], 0, 0, time.perf_counter()
        for i, (_source, image, payload) in enumerate(marked):
            d = detect(ATTACKS[attack](image, i), expected=payload)
            accuracy.append(d.expected_agreement / 63)
            found += d.marked
            exact += d.marked and d.payload == payload
        n = len(marked)
        rows.append({"method": "kaiga", "attack": attack, "n": n, "bit_accuracy": round(float(np.mean(accuracy)), 4),
                     "bit_accuracy_min": round(float(np.min(accuracy)), 4), "detected": round(found / n, 4),
                     "payload_exact": round(exact / n, 4),
                     "ms_per_image": round((time.perf_counter() - t0) * 1000 / n, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def by_source(marked, attacks) -> dict:
    """Detection rate per family (and flat) and attack."""
    out = {}
    for source in dict.fromkeys(s for s, _, _ in marked):
        items = [(s, im, p) for s, im, p in marked if s == source]
        out[source] = {a: round(float(np.mean([detect(ATTACKS[a](im, i)).payload == p for i, (_, im, p)
                                               in enumerate(items)])), 3) for a in attacks}
    return out


def false_positives(images, attacks, search: bool = True) -> dict:
    """Unmarked images, each through a random attack, read as `detect` reads (`search`: with the crop search,
    as kaiga verify does; without it, the whole-image reading alone, cheap enough for many more images)."""
    flagged, per_kind = 0, {}
    rng = random.Random(0)
    for i, (kind, image) in enumerate(images):
        attack = rng.choice(attacks)
        hit = detect(ATTACKS[attack](image, i), search=search).marked
        flagged += hit
        per_kind.setdefault(kind, [0, 0])
        per_kind[kind][0] += hit
        per_kind[kind][1] += 1
    n = len(images)
    return {"n": n, "false_positives": flagged, "rate": flagged / n,
            "rule_of_three_upper_95": (3 / n) if flagged == 0 else None,
            "by_kind": {k: {"false_positives": v[0], "n": v[1]} for k, v in per_kind.items()}}


def imwatermark_rows(images: list[Image.Image], attacks: list[str]) -> dict:
    """invisible-watermark's dwtDct with 32 bits, at 64×64 (refused?) and at 256×256."""
    try:
        import cv2
        from imwatermark import WatermarkDecoder, WatermarkEncoder
    except ImportError as e:
        return {"available": False, "why": str(e)}
    rng = np.random.default_rng(1)

    def run(im: Image.Image, bits: list[int], attack: str, i: int) -> float | str:
        enc = WatermarkEncoder()
        enc.set_watermark("bits", bits)
        try:
            bgr = enc.encode(cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR), "dwtDct")
        except Exception as e:  # noqa: BLE001 - its refusal is the finding
            return f"refused: {e}"
        attacked = ATTACKS[attack](Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), i)
        try:
            dec = WatermarkDecoder("bits", 32)
            got = dec.decode(cv2.cvtColor(np.asarray(attacked), cv2.COLOR_RGB2BGR), "dwtDct")
        except Exception as e:  # noqa: BLE001
            return f"refused: {e}"
        return float(np.mean(np.array(got[:32]) == np.array(bits)))

    out = {"available": True, "at_64": str(run(images[0], list(rng.integers(0, 2, 32)), "clean", 0))}
    rows = []
    for attack in attacks:
        accs = [run(im.resize((256, 256), Image.LANCZOS), list(rng.integers(0, 2, 32)), attack, i)
                for i, im in enumerate(images)]
        numbers = [a for a in accs if isinstance(a, float)]
        rows.append({"method": "invisible-watermark dwtDct", "size": 256, "attack": attack, "n": len(numbers),
                     "refused": len(accs) - len(numbers),
                     "bit_accuracy": round(float(np.mean(numbers)), 4) if numbers else None,
                     "exact_32_bits": round(float(np.mean([a == 1.0 for a in numbers])), 4) if numbers else None})
        print(json.dumps(rows[-1]), flush=True)
    out["rows"] = rows
    return out


def write_picture(sources, marked, path: Path) -> None:
    """One column per family (its first image) and two flat images: the original, the marked image, and the
    residual enlarged ×10 around grey; each cell shown at 2×."""
    from kaiga.images import captioned_strip

    picks = [next(i for i, (s, _) in enumerate(sources) if s == name) for name in FAMILIES]
    picks += [i for i, (s, _) in enumerate(sources) if s == "flat"][:2]
    frames, captions = [], []
    for row, label in ((0, "original"), (1, "marked"), (2, "residual x10")):
        for i in picks:
            original, mark = np.asarray(sources[i][1], np.int16), np.asarray(marked[i][1], np.int16)
            cell = [original, mark, (128 + 10 * (mark - original)).clip(0, 255)][row].astype(np.uint8)
            frames.append(Image.fromarray(cell))
            captions.append(f"{sources[i][0].removeprefix('scenes-')} {label}")
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = len(picks)
    strips = [captioned_strip(frames[r * cols:(r + 1) * cols], captions[r * cols:(r + 1) * cols], scale=2)
              for r in range(3)]
    sheet = Image.new("RGB", (max(s.width for s in strips), sum(s.height for s in strips)), "white")
    y = 0
    for strip in strips:
        sheet.paste(strip, (0, y))
        y += strip.height
    sheet.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-family", type=int, default=24)
    parser.add_argument("--negatives", type=int, default=600, help="unmarked images read with the crop search")
    parser.add_argument("--negatives-whole", type=int, default=5000, help="unmarked images read whole, no search")
    parser.add_argument("--weights", type=Path, default=None, help="a `kaiga train watermark` folder (default: bundled)")
    parser.add_argument("--json", type=Path, default=Path("bench/results/watermark.json"))
    parser.add_argument("--picture", type=Path, default=Path("docs/trust/watermark.png"),
                        help="originals, marked images and their residuals ×10, for docs/TRUST.md")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.weights:
        import kaiga.provenance.watermark as wm

        net = load_network(args.weights)
        wm.load_network = lambda folder=None: net  # every detect/embed below uses these weights
    rng = np.random.default_rng(0)
    sources = model_images(args.per_family) + flat_images()
    marked, psnrs = [], []
    for source, image in sources:
        payload = int(rng.integers(0, 2**32))
        m = embed(image, payload)
        marked.append((source, m, payload))
        psnrs.append(psnr(image, m))
    assert all(len(codeword(p)) == 63 for _, _, p in marked)
    write_picture(sources, marked, args.picture)
    attacks = list(ATTACKS)
    rows = kaiga_rows(marked, attacks)
    upscaled = [(s, m.resize((256, 256), Image.LANCZOS), p) for s, m, p in marked]
    rows_256 = kaiga_rows(upscaled, attacks)
    for row in rows_256:
        row["size"] = 256
    result = {
        "bench": "watermark", "kaiga": __version__, "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "images": {"per_family": args.per_family, "families": list(FAMILIES), "flat": len(flat_images()),
                   "n": len(marked)},
        "psnr_db": {"mean": round(float(np.mean(psnrs)), 2), "min": round(float(np.min(psnrs)), 2)},
        "rows": rows, "rows_256": rows_256,
        "payload_by_source": by_source(marked, ["clean", "jpeg50", "resize0.5", "crop10", "noise0.02"]),
        "false_positives": false_positives(negatives(args.negatives), attacks),
        "false_positives_whole_image": false_positives(negatives(args.negatives_whole, seed=6), attacks, search=False),
        "invisible_watermark": imwatermark_rows([im for _, im in sources], attacks),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.json}")


if __name__ == "__main__":
    main()
