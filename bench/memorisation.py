"""The memorisation audit, measured: a GAN fine-tuned on scenes with planted duplicates, then audited.

Usage:
    OMP_NUM_THREADS=1 python bench/memorisation.py [--work /tmp/kaiga-mem] [--run RUN] [--minutes 10]
        [--json bench/results/memorisation.json]

1. Data (`<work>/data`): 3,000 scenes renders (seed 1) plus PLANTED duplicates: 20 renders of another
   stream (seed 777) each copied 50 times with their captions (1,000 files, a quarter of the set).
2. Training (`<work>/run`, skipped when it holds a model or `--run` names one): `kaiga train gan
   --init scenes-gan` on that folder for `--minutes`, one process. The run folder stays out of git.
3. Measuring, with the audit's own functions (kaiga.audit.memorisation), threshold calibrated on held-out
   renders (seed 2, never trained on) at a 1 % false-flag rate:
   - detector: the 20 planted images, perturbed (JPEG q70, a 1-pixel shift, Gaussian noise σ 4/255),
     against the training set; false flags on 500 held-out renders (seed 2);
   - model: images generated from the planted captions; an output is a *true copy* when it reproduces
     its planted source, decided without the audit's score (see `true_copies`: a whole-image RMS distance,
     below the 1st percentile of the distances to held-out renders of the source's scene and object).
     False flags: images generated for held-out captions (other prompts), and the held-out renders.
   Results: bench/results/memorisation.json; read in docs/trust/memorisation.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kaiga.data.dataset import METADATA, scene_example, write_scenes

BASE_N, BASE_SEED = 3000, 1
PLANTED_N, PLANTED_COPIES, PLANTED_SEED = 20, 50, 777


def build_data(folder: Path) -> list[dict]:
    """The training folder with planted duplicates; returns the planted items (file, captions, attributes)."""
    if not (folder / METADATA).is_file():
        write_scenes(folder, BASE_N, seed=BASE_SEED)
        planted, lines = [], []
        for p in range(PLANTED_N):
            image, captions, attrs = scene_example(p, PLANTED_SEED)
            for c in range(PLANTED_COPIES):
                name = f"planted-{p:02d}-{c:02d}.png"
                image.save(folder / name)
                lines.append(json.dumps({"file_name": name, "text": captions, "attributes": attrs}) + "\n")
            planted.append({"file_name": f"planted-{p:02d}-00.png", "captions": captions, "attributes": attrs})
        with open(folder / METADATA, "a", encoding="utf-8") as meta:
            meta.writelines(lines)
        (folder / "planted.json").write_text(json.dumps(planted, indent=1))
    return json.loads((folder / "planted.json").read_text())



HELDOUT_SEED = 2  # held-out renders: never trained on (training used seeds 1 and 777), not the calibration stream
HELDOUT_N = 500  # held-out renders the false flags are counted on
REFERENCE_POOL = 3000  # held-out renders searched for each planted source's look-alikes (same scene and object)
SEEDS_PER_CAPTION = 2  # generated images per planted caption (4 captions each): 160 in all
OTHER_PROMPTS = 200  # generated images for held-out captions (other prompts)
COPY_SHIFT = 2


def copy_distance(a, b):
    """[Na, Nb]: whole-image RMS pixel difference at 64×64 in [0, 1] units, the smallest over shifts of `a` by up to
    COPY_SHIFT pixels each way. A labelling distance of its own: no judge features, no tiles, no percentile."""
    import torch

    from kaiga.audit.distances import shifted

    a, b = a.float() / 255, b.float() / 255
    fb = b.flatten(1)
    best = None
    for dy in range(-COPY_SHIFT, COPY_SHIFT + 1):
        for dx in range(-COPY_SHIFT, COPY_SHIFT + 1):
            fa = shifted(a, dy, dx).flatten(1)
            d = ((fa * fa).sum(1)[:, None] + (fb * fb).sum(1)[None] - 2 * fa @ fb.T).clamp_min(0) / fa.shape[1]
            best = d if best is None else torch.minimum(best, d)
    return best.sqrt()


def _kind(attrs: dict) -> tuple:
    return attrs["scene"], attrs["objects"][0]["name"] if attrs["objects"] else None


def copy_reference(planted: list[dict]):
    """Per planted source, the held-out renders of the same kind (same scene and first object; at least 20,
    else the same object, else all) out of REFERENCE_POOL: (their pixels [M, 3, 64, 64], masks [20, M] bool)."""
    import torch

    from kaiga.audit.distances import pixels

    pool = [scene_example(i, HELDOUT_SEED + 1000) for i in range(REFERENCE_POOL)]
    masks = []
    for item in planted:
        scene, obj = _kind(item["attributes"])
        for keep in (lambda a: _kind(a) == (scene, obj), lambda a: _kind(a)[1] == obj, lambda a: True):
            mask = torch.tensor([keep(a) for _, _, a in pool])
            if int(mask.sum()) >= 20:
                break
        masks.append(mask)
    masks = torch.stack(masks)
    used = masks.any(0)
    return pixels([im for (im, _, _), u in zip(pool, used.tolist()) if u]), masks[:, used]


def true_copies(gen_pix, src_pix, pool_pix, masks):
    """[Ng, 20] bool: generated image g is a true copy of planted source p when its copy_distance to p is below
    both (a) the 1st percentile of p's distances to the held-out renders of p's kind (nearer p than any
    look-alike render is) and (b) the 1st percentile of g's own distances to those renders (nearer p than to
    the look-alikes: a blurred average image is near everything and so a copy of nothing)."""
    import torch

    d_src = copy_distance(gen_pix, src_pix)  # [Ng, 20]
    d_pool = copy_distance(gen_pix, pool_pix)  # [Ng, M]
    src_pool = copy_distance(src_pix, pool_pix)  # [20, M]
    out = torch.zeros_like(d_src, dtype=torch.bool)
    thr_src = []
    for p in range(src_pix.shape[0]):
        t_src = torch.quantile(src_pool[p][masks[p]], 0.01)
        t_gen = torch.quantile(d_pool[:, masks[p]], 0.01, dim=1)
        out[:, p] = (d_src[:, p] < t_src) & (d_src[:, p] < t_gen)
        thr_src.append(float(t_src))
    return out, d_src, thr_src


def _jpeg(im, q=70):
    import io

    from PIL import Image

    b = io.BytesIO()
    im.save(b, "JPEG", quality=q)
    return Image.open(b).convert("RGB")


def _noise(im, sigma=4.0):
    import numpy as np
    from PIL import Image

    a = np.asarray(im).astype(float) + np.random.default_rng(0).normal(0, sigma, np.asarray(im).shape)
    return Image.fromarray(a.clip(0, 255).astype("uint8"))


def _shift(im, d=1):
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.roll(np.asarray(im), (d, d), (0, 1)))


PERTURBATIONS = {"jpeg_q70": _jpeg, "noise_sigma4": _noise, "shift_1px": _shift}


def train_model(data: Path, run: Path, minutes: float) -> None:
    """`kaiga train gan --init scenes-gan` on the planted folder, one process, `minutes` at most."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "kaiga", "train", "gan", "--data", str(data), "--out", str(run),
                    "--init", "scenes-gan", "--max-minutes", str(minutes), "--threads", "1"], check=True)


def measure(data: Path, run: Path, planted: list[dict], log=print) -> dict:
    import time

    import torch
    from PIL import Image

    from kaiga.audit.memorisation import CALIBRATION_SEED, Embedded, calibrate, calibration_renders, embed, neighbours
    from kaiga.data.dataset import read_metadata
    from kaiga.eval.alignment import model_generate
    from kaiga.eval.readout import ReadoutNet
    from kaiga.studio import Studio

    t0 = time.perf_counter()
    judge = ReadoutNet.load()
    examples = read_metadata(data)
    # The 1,000 planted files are 20 images 50 times over: nearest distances are the same over the distinct
    # images, so each is embedded once (file order kept, first copy of each planted image).
    distinct = [e for e in examples if not e.path.name.startswith("planted-") or e.path.name.endswith("-00.png")]
    source_row = {int(e.path.name[8:10]): i for i, e in enumerate(distinct) if e.path.name.startswith("planted-")}
    train = embed([Image.open(e.path).convert("RGB") for e in distinct], judge)
    log(f"train embedded: {len(train)} distinct of {len(examples)} files, {time.perf_counter() - t0:.0f}s")
    cal = calibrate(embed(calibration_renders(500), judge), train, 0.01,
                    source=f"fresh scenes renders (seed {CALIBRATION_SEED})")
    log(f"calibrated {cal}, {time.perf_counter() - t0:.0f}s")

    def flags(emb: Embedded):
        idx, s = neighbours(emb, train, cal, k=1)
        return idx[:, 0], s[:, 0], s[:, 0] < cal.threshold

    held = [scene_example(i, HELDOUT_SEED) for i in range(HELDOUT_N)]
    _, held_s, held_f = flags(embed([im for im, _, _ in held], judge))
    sources = [scene_example(p, PLANTED_SEED)[0] for p in range(PLANTED_N)]
    detector = {"n_heldout": HELDOUT_N, "heldout_flagged": int(held_f.sum()),
                "heldout_false_flag_share": round(float(held_f.float().mean()), 4), "perturbed": {}}
    for name, fn in {"exact": lambda x: x, **PERTURBATIONS}.items():
        idx, s, f = flags(embed([fn(im) for im in sources], judge))
        right = torch.tensor([int(idx[p]) == source_row[p] for p in range(PLANTED_N)])
        detector["perturbed"][name] = {"n": PLANTED_N, "flagged": int(f.sum()),
                                       "flagged_share": round(float(f.float().mean()), 4),
                                       "flagged_matched_to_source": int((f & right).sum()),
                                       "median_score": round(float(s.median()), 4)}
    log(f"detector {detector}, {time.perf_counter() - t0:.0f}s")

    loaded = Studio().load(str(run))
    generate = model_generate(loaded.model)
    prompts, owner, seeds = [], [], []
    for p, item in enumerate(planted):
        for c in item["captions"]:
            for s in range(SEEDS_PER_CAPTION):
                prompts.append(c), owner.append(p), seeds.append(len(seeds))
    gen_planted = generate(prompts, seeds)
    other_prompts = [cap[0] for _, cap, _ in held[:OTHER_PROMPTS]]
    gen_other = generate(other_prompts, [10_000 + i for i in range(OTHER_PROMPTS)])
    log(f"generated {len(gen_planted)} + {len(gen_other)}, {time.perf_counter() - t0:.0f}s")

    pool_pix, masks = copy_reference(planted)
    counts = [int(m.sum()) for m in masks]
    src_pix = train.pixels[[source_row[p] for p in range(PLANTED_N)]]
    e_planted, e_other = embed(gen_planted, judge), embed(gen_other, judge)
    own = torch.tensor(owner)
    copy_p, d_p, thresholds = true_copies(e_planted.pixels, src_pix, pool_pix, masks)
    is_copy = copy_p[torch.arange(len(own)), own]
    idx, s, f = flags(e_planted)
    to_source = idx == torch.tensor([source_row[p] for p in owner])
    other_copy = true_copies(e_other.pixels, src_pix, pool_pix, masks)[0].any(1)
    _, s_o, f_o = flags(e_other)
    n_copy = int(is_copy.sum())
    model = {
        "run": str(run), "model_hash": loaded.hash,
        "planted_prompt_outputs": len(gen_planted),
        "true_copies": n_copy,
        "true_copies_flagged": int((is_copy & f).sum()),
        "true_copy_recall": round(float((is_copy & f).sum()) / n_copy, 4) if n_copy else None,
        "true_copies_flagged_to_their_source": int((is_copy & f & to_source).sum()),
        "planted_prompt_non_copies": int((~is_copy).sum()),
        "planted_prompt_non_copies_flagged": int((~is_copy & f).sum()),
        "other_prompt_outputs": len(gen_other),
        "other_prompt_true_copies": int(other_copy.sum()),
        "other_prompt_flagged": int(f_o.sum()),
        "other_prompt_false_flag_share": round(float(f_o.float().mean()), 4),
        "heldout_false_flag_share": detector["heldout_false_flag_share"],
        "copy_label": {"distance": f"whole-image RMS at 64x64, min over ±{COPY_SHIFT}px shifts",
                       "rule": "distance to the source below the 1st percentile of the source's and of the "
                               "generated image's distances to held-out renders (seed "
                               f"{HELDOUT_SEED + 1000}, {REFERENCE_POOL} drawn) of the source's scene and object",
                       "reference_counts": counts, "thresholds": [round(t, 4) for t in thresholds]},
        "own_source_distance_median": round(float(d_p[torch.arange(len(own)), own].median()), 4),
        "source_threshold_median": round(float(torch.tensor(thresholds).median()), 4),
    }
    log(f"model {model}, {time.perf_counter() - t0:.0f}s")
    return {"calibration": cal.to_dict(), "n_train_files": len(examples), "n_train_distinct": len(train),
            "detector": detector, "model": model, "seconds": round(time.perf_counter() - t0, 1)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/kaiga-mem"))
    ap.add_argument("--run", type=Path, default=None, help="an existing run folder to measure (no training)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--json", type=Path, default=Path("bench/results/memorisation.json"))
    args = ap.parse_args()
    planted = build_data(args.work / "data")
    run = args.run or args.work / "run"
    if not (run / "model.safetensors").is_file():
        train_model(args.work / "data", run, args.minutes)
    result = {"command": "OMP_NUM_THREADS=1 python bench/memorisation.py --work " + str(args.work)
              + (f" --run {args.run}" if args.run else "")} | measure(args.work / "data", run, planted)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")
