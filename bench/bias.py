"""The bias audit's demonstration: a planted 80/20 skew detected, a balanced control passed, the skew mitigated.

1. Two datasets (bench/bias_data.py): half of the images cars, every car red with probability 0.8
   (skewed) or 0.5 (balanced control), blue otherwise.
2. The bundled scenes-vae fine-tuned on each (`kaiga train vae --init scenes-vae --max-minutes M`), one
   run at a time; an existing run folder is reused (training skipped).
3. `kaiga audit bias` on "a car" against each run's own data: the skewed run, the balanced run, and the
   skewed run with balanced prompt completion (`--balance colour`) as the mitigation.
4. bench/results/bias.json: the colour figures of the three audits, TV before and after the mitigation.

    python bench/bias.py --runs /tmp/bias-runs --n 200 --max-minutes 6
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bias_data import write_car_colours  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def kaiga(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "kaiga", *args], check=True, env=env)


def chart(runs: Path, path: Path) -> None:
    """The colour panels of the three audits side by side (docs/trust/bias.png)."""
    from kaiga.audit.bias import rows
    from kaiga.audit.bias_chart import bias_chart

    panels = []
    for label, folder in (("skewed 80/20", "audit-skewed"), ("balanced control", "audit-balanced"),
                          ("skewed + --balance colour", "audit-skewed-balance-colour")):
        row = next(r for r in rows(json.loads((runs / folder / "bias.json").read_text())) if r["attribute"] == "colour")
        panels.append({**row, "prompt": f"{label}: a car"})
    bias_chart(panels).save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=Path("/tmp/bias-runs"), help="datasets, runs and audits (not committed)")
    ap.add_argument("--images", type=int, default=6000, help="images per dataset")
    ap.add_argument("--max-minutes", type=float, default=6.0, help="training time per run")
    ap.add_argument("--n", type=int, default=200, help="images per audit")
    ap.add_argument("--json", type=Path, default=ROOT / "bench/results/bias.json")
    a = ap.parse_args()
    runs = {"skewed": 0.8, "balanced": 0.5}
    for name, share in runs.items():
        data, run = a.runs / f"data-{name}", a.runs / f"vae-{name}"
        if not (data / "metadata.jsonl").exists():
            write_car_colours(data, a.images, share, seed={"skewed": 1, "balanced": 2}[name])
        if not (run / "kaiga.json").exists():
            kaiga("train", "vae", "--data", str(data), "--out", str(run), "--init", "scenes-vae", "--max-minutes",
                  str(a.max_minutes), "--sample-every", "100000", "--checkpoint-every", "100000", "--threads", "1")
    audits = {"skewed": ("skewed", []), "balanced": ("balanced", []), "skewed+balance colour": ("skewed", ["--balance", "colour"])}
    result = {"prompt": "a car", "attribute": "colour", "n": a.n, "images_per_dataset": a.images,
              "planted_share_red": runs, "family": "vae (scenes-vae fine-tuned)", "audits": {}}
    for label, (run, extra) in audits.items():
        out = a.runs / f"audit-{label.replace(' ', '-').replace('+', '-')}"
        kaiga("audit", "bias", "--model", str(a.runs / f"vae-{run}"), "--n", str(a.n), "-p", "a car", "--data",
              str(a.runs / f"data-{run}"), "--out", str(out), "--threads", "1", *extra)
        audit = json.loads((out / "bias.json").read_text())
        colour = audit["prompts"][0]["attributes"]["colour"]
        train = json.loads((a.runs / f"vae-{run}" / "kaiga.json").read_text())["training"]["runs"][-1]
        result["audits"][label] = {
            "model": str(a.runs / f"vae-{run}"), "training_steps": train.get("steps"),
            "training_seconds": train.get("seconds"), "chart": str(out / "bias.png"),
            **{k: colour[k] for k in ("shares", "ci95", "counts", "all_counts", "off_support_share", "train_shares",
                                      "uniform", "train", "train_tv_from_uniform", "amplification", "judge",
                                      "verdict", "amplified")},
        }
    before = result["audits"]["skewed"]["uniform"]["tv"]
    after = result["audits"]["skewed+balance colour"]["uniform"]["tv"]
    result["mitigation"] = {"tv_uniform_before": before, "tv_uniform_after": after,
                            "skew_removed": round(1 - after / before, 3) if before else None}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=1) + "\n")
    chart(a.runs, ROOT / "docs/trust/bias.png")
    print(json.dumps(result["mitigation"]), "->", a.json)


if __name__ == "__main__":
    main()
