"""The four families side by side: speed and size measured here, quality read from the eval JSON files.

`measure_families` times every model in one run, so the ratios against the diffusion model (the
baseline row) are fair on a noisy machine: ms/image at batch 16 with each family's default
sampling settings (diffusion: DDIM, 20 steps, guidance 3), the median of `repeats` timed runs
after one warm-up. `kaiga.eval.report` joins those figures with the alignment and fidelity results.

Example:
    >>> params_of(torch.nn.Linear(3, 2))
    8
"""

from __future__ import annotations

import platform
import statistics
import time
from datetime import datetime, timezone

import torch

from kaiga.eval.speed import git_commit
from kaiga.request import GenerationRequest

DEFAULT_MODELS = ("scenes-diffusion", "scenes-gan", "scenes-vae", "scenes-transformer")
BASELINE = "scenes-diffusion"


def params_of(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def time_batch(model, batch: int, repeats: int) -> list[float]:
    """Seconds per call of `batch` images (default request), after one untimed warm-up call."""
    request = GenerationRequest(prompt="a red car to the left of a blue dog in the city at night")
    seeds = list(range(batch))
    model.sample(request, seeds, batch_size=batch)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.sample(request, seeds, batch_size=batch)
        times.append(time.perf_counter() - t0)
    return times


def measure_families(models=DEFAULT_MODELS, batch: int = 16, repeats: int = 3, threads: int | None = None,
                     on_model=None) -> dict:
    """ms/image at `batch` and parameter count of each model, measured in this run."""
    from kaiga.model_files import load_model, model_hash, resolve_model

    if threads:
        torch.set_num_threads(threads)
    rows = {}
    for name in models:
        ref = resolve_model(name)
        model = load_model(ref, torch.device("cpu"))
        with torch.no_grad():
            seconds = time_batch(model, batch, repeats)
        ms = statistics.median(seconds) * 1000 / batch
        rows[ref.name] = {"family": ref.family, "model_hash": model_hash(ref), "params": params_of(model),
                          "ms_per_image": round(ms, 2), "images_per_s": round(1000 / ms, 2),
                          "runs_s": [round(s, 4) for s in seconds], "training": model.info.get("training")}
        if on_model is not None:
            on_model(ref.name)
    base = rows.get(BASELINE)
    for row in rows.values():
        row["speedup_over_diffusion"] = round(base["ms_per_image"] / row["ms_per_image"], 1) if base else None
    return {"settings": {"batch": batch, "repeats": repeats, "threads": torch.get_num_threads(), "device": "cpu",
                         "baseline": BASELINE},
            "environment": {"machine": platform.machine(), "torch": torch.__version__, "commit": git_commit(),
                            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")},
            "models": rows}
