"""Generation speed of kaiga against stock diffusers, on the same weights, in one run.

Usage:
    python bench/generate.py [--model NAME|PATH] [--repeats 3] [--json bench/results/generate.json]
    python bench/generate.py --quick        # smoke run: 2 steps, batch 1 and 2, 1 repeat

What is measured (see bench/README.md for every JSON field):

1. Throughput. For each cell (steps × batch: 4 and 20 steps, batch 1 and 16; DDIM, guidance 3.0,
   64×64) the wall time of one call that returns PIL images, divided by the batch: ms/image and
   images/s. "kaiga" is `kaiga.pipelines.text_to_image`; "stock" is diffusers'
   `StableDiffusionPipeline` built from the very same loaded modules (same tensors in memory) with a
   fresh `DDIMScheduler`. Each side gets one warm-up call per cell, then `repeats` timed calls,
   interleaved kaiga, stock, kaiga, stock, … so that machine noise (other processes, thermal
   throttling) hits both alike; the median is reported.
2. Ratio = kaiga ms/image ÷ stock ms/image for each cell. Below 1 kaiga is faster, above 1 slower;
   0.9 means kaiga takes 10 % less time per image. Both sides draw the same per-image noise, so the
   warm-up images should agree (`max_pixel_diff`, in grey levels), which shows they did the same work.
3. Cold start to first image: a fresh Python subprocess that imports, loads the model and makes one
   image (20 steps). `wall_s` is timed around `subprocess.run`, so it includes interpreter start;
   the subprocess reports its own split (import_s, load_s, generate_s). The stock side loads the
   folder with `StableDiffusionPipeline.from_pretrained` when it can, else from kaiga's loaded
   components (then `loader` says so and `loader_note` says why).
4. Peak RSS of each cold-start subprocess, in MiB: `ru_maxrss` from inside it, except that on Linux
   that figure also carries the parent's peak across fork+exec, so VmHWM (the same peak, this
   process only) is reported where /proc exists; the raw `ru_maxrss_mib` is kept beside it.
5. The environment: versions, cores, torch threads, device, git commit, date, model hash.

Cold starts run with the OS file cache warm after the first one: they measure Python, imports and
loading, not the disk. On a busy machine pass `--threads N` to bound the cores used (it also sets
OMP_NUM_THREADS for the subprocesses).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline

    from kaiga.families.diffusion.model import LatentDiffusion

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / "bench" / "results" / "generate.json"
PROMPT = "a red car"
SAMPLER = "ddim"
GUIDANCE = 3.0
SIZE = 64
FULL_STEPS, FULL_BATCHES, FULL_REPEATS, FULL_COLD_STEPS = (4, 20), (1, 16), 3, 20
QUICK_STEPS, QUICK_BATCHES, QUICK_REPEATS, QUICK_COLD_STEPS = (2,), (1, 2), 1, 2
RESULT_MARK = "BENCH_RESULT "  # prefix of the JSON line a cold-start subprocess prints

Generate = Callable[[], list[Image.Image]]


@dataclass(frozen=True)
class Settings:
    model: str | None
    device: str | None
    steps: tuple[int, ...]
    batches: tuple[int, ...]
    repeats: int
    cold_steps: int
    threads: int | None
    quick: bool


# --- environment -----------------------------------------------------------------------------------
def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict[str, Any]:
    import diffusers
    import transformers

    return {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": device_name(device),
        "git_commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# --- the two generators ----------------------------------------------------------------------------
def kaiga_generate(model: LatentDiffusion, steps: int, seeds: list[int]) -> Generate:
    from kaiga.pipelines.text_to_image import text_to_image
    from kaiga.request import GenerationRequest

    request = GenerationRequest(prompt=PROMPT, steps=steps, guidance=GUIDANCE, sampler=SAMPLER, width=SIZE,
                                height=SIZE, n=len(seeds))
    return lambda: text_to_image(model, request, seeds, batch_size=len(seeds))


def stock_pipeline(model: LatentDiffusion) -> StableDiffusionPipeline:
    """diffusers' StableDiffusionPipeline around the modules of a loaded kaiga model (shared, not copied)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    with warnings.catch_warnings():
        # It rewrites steps_offset 0 -> 1 with a long notice; with "trailing" spacing that changes no timestep.
        warnings.simplefilter("ignore", FutureWarning)
        pipe = StableDiffusionPipeline(
            vae=model.vae, text_encoder=model.text_encoder, tokenizer=model.tokenizer, unet=model.unet,
            scheduler=DDIMScheduler.from_config(model.scheduler_config), safety_checker=None,
            feature_extractor=None, requires_safety_checker=False,
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def stock_generate(pipe: StableDiffusionPipeline, steps: int, seeds: list[int]) -> Generate:
    def run() -> list[Image.Image]:
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        return pipe(PROMPT, num_inference_steps=steps, guidance_scale=GUIDANCE, height=SIZE, width=SIZE,
                    num_images_per_prompt=len(seeds), generator=generators, output_type="pil").images

    return run


# --- throughput ------------------------------------------------------------------------------------
def timed(fn: Generate, device: torch.device) -> tuple[float, list[Image.Image]]:
    """Seconds of one call, with the device's queue drained before and after."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t0, out


def max_pixel_diff(a: list[Image.Image], b: list[Image.Image]) -> int:
    return max(int(np.abs(np.asarray(x, np.int16) - np.asarray(y, np.int16)).max()) for x, y in zip(a, b))


def side_summary(seconds: list[float], batch: int) -> dict[str, Any]:
    ms = [s * 1000 / batch for s in seconds]
    median = statistics.median(ms)
    return {"ms_per_image": round(median, 2), "images_per_s": round(1000 / median, 3),
            "ms_per_image_runs": [round(m, 2) for m in ms]}


def measure_cell(model: LatentDiffusion, pipe: StableDiffusionPipeline, steps: int, batch: int, repeats: int,
                 device: torch.device) -> dict[str, Any]:
    """One warm-up each, then kaiga and stock alternately, `repeats` times."""
    seeds = list(range(batch))
    runs = {"kaiga": kaiga_generate(model, steps, seeds), "stock": stock_generate(pipe, steps, seeds)}
    warm = {name: fn() for name, fn in runs.items()}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            seconds[name].append(timed(fn, device)[0])
    kaiga, stock = (side_summary(seconds[n], batch) for n in ("kaiga", "stock"))
    return {"steps": steps, "batch": batch, "kaiga": kaiga, "stock": stock,
            "ratio_kaiga_over_stock": round(kaiga["ms_per_image"] / stock["ms_per_image"], 3),
            "max_pixel_diff": max_pixel_diff(warm["kaiga"], warm["stock"])}


def throughput(model: LatentDiffusion, s: Settings, device: torch.device) -> list[dict[str, Any]]:
    pipe = stock_pipeline(model)
    return [measure_cell(model, pipe, steps, batch, s.repeats, device) for steps in s.steps for batch in s.batches]


# --- cold start ------------------------------------------------------------------------------------
# Both scripts time themselves from their first line and print one JSON line prefixed RESULT_MARK.
# argv: model (kaiga: name or path, "" for the default; stock: the folder or file), device, steps.
_COMMON_HEAD = """\
import time
t_start = time.perf_counter()
import json, resource, sys
model_arg, device_arg, steps = sys.argv[1] or None, sys.argv[2], int(sys.argv[3])
"""

_COMMON_TAIL = """\
t_done = time.perf_counter()
# ru_maxrss: KiB on Linux, bytes on macOS. On Linux it also keeps the parent's peak across fork+exec, so
# the peak of this process alone is VmHWM of /proc/self/status, used where it exists.
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
try:
    hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0]
    peak, source = int(hwm.split()[1]) / 2**10, "VmHWM"
except (OSError, IndexError, ValueError):
    peak, source = maxrss, "ru_maxrss"
result.update(import_s=t_import - t_start, load_s=t_load - t_import, generate_s=t_done - t_load,
              in_process_s=t_done - t_start, peak_rss_mib=peak, peak_rss_source=source, ru_maxrss_mib=maxrss,
              image_size=list(images[0].size))
print("%s" + json.dumps(result), flush=True)
""" % RESULT_MARK

KAIGA_COLD = _COMMON_HEAD + """\
from kaiga import Studio
t_import = time.perf_counter()
studio = Studio(device=device_arg)
loaded = studio.load(model_arg)  # what generate() does on first use; split out to time it
t_load = time.perf_counter()
images = [g.image for g in studio.generate("a red car", seed=0, steps=steps, model=model_arg)]
result = {"hash_s": (t_load - t_import) - loaded.load_seconds, "device": str(studio.device)}
""" + _COMMON_TAIL

STOCK_COLD = _COMMON_HEAD + """\
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline
t_import = time.perf_counter()
import diffusers, transformers
diffusers.utils.logging.set_verbosity_error(); transformers.utils.logging.set_verbosity_error()
diffusers.utils.logging.disable_progress_bar(); transformers.utils.logging.disable_progress_bar()
device = torch.device(device_arg)
dtype = torch.float16 if device.type == "cuda" else torch.float32
result = {"device": str(device), "loader": "from_pretrained", "loader_note": None}
try:
    pipe = StableDiffusionPipeline.from_pretrained(model_arg, local_files_only=True, safety_checker=None,
                                                   torch_dtype=dtype)
except Exception as e:  # e.g. a single-file checkpoint, or a folder diffusers cannot read
    from kaiga.models import load_model, resolve_model
    m = load_model(resolve_model(model_arg), device)
    pipe = StableDiffusionPipeline(vae=m.vae, text_encoder=m.text_encoder, tokenizer=m.tokenizer, unet=m.unet,
                                   scheduler=DDIMScheduler.from_config(m.scheduler_config), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    result.update(loader="kaiga-components", loader_note=f"from_pretrained failed: {type(e).__name__}: {e}"[:500])
pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
pipe = pipe.to(device)
pipe.set_progress_bar_config(disable=True)
t_load = time.perf_counter()
images = pipe("a red car", num_inference_steps=steps, guidance_scale=3.0, height=64, width=64,
              generator=[torch.Generator().manual_seed(0)], output_type="pil").images
""" + _COMMON_TAIL

COLD_SCRIPTS = {"kaiga": KAIGA_COLD, "stock": STOCK_COLD}


def child_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def cold_start_once(script: str, model_arg: str, device: torch.device, s: Settings) -> dict[str, Any]:
    cmd = [sys.executable, "-c", script, model_arg, str(device), str(s.cold_steps)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(s.threads), cwd=REPO)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"cold-start subprocess failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, **json.loads(lines[-1][len(RESULT_MARK):])}


def cold_start_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the numeric fields; the other fields from the last run; every run kept."""
    numeric = ("wall_s", "import_s", "load_s", "generate_s", "in_process_s", "peak_rss_mib", "ru_maxrss_mib",
               "hash_s")
    out: dict[str, Any] = {k: v for k, v in runs[-1].items() if k not in numeric}
    for k in numeric:
        if k in runs[0]:
            out[k] = round(statistics.median(r[k] for r in runs), 3)
    out["outside_s"] = round(max(out["wall_s"] - out["in_process_s"], 0.0), 3)  # interpreter start + exit
    out["runs"] = [{k: round(v, 3) for k, v in r.items() if k in numeric} for r in runs]
    return out


def cold_start(s: Settings, model_path: Path, device: torch.device) -> dict[str, Any]:
    """kaiga gets the model as the user named it (Studio resolves it); stock gets the resolved path."""
    model_args = {"kaiga": s.model or "", "stock": str(model_path)}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in COLD_SCRIPTS}
    for _ in range(s.repeats):  # interleaved, like the throughput cells
        for name, script in COLD_SCRIPTS.items():
            runs[name].append(cold_start_once(script, model_args[name], device, s))
    result: dict[str, Any] = {name: cold_start_summary(r) for name, r in runs.items()}
    result["steps"] = s.cold_steps
    result["ratio_wall_kaiga_over_stock"] = round(result["kaiga"]["wall_s"] / result["stock"]["wall_s"], 3)
    return result


# --- report ----------------------------------------------------------------------------------------
def print_report(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    env = result["environment"]
    console = Console() if sys.stdout.isatty() else Console(width=120)  # no wrapped columns in logs
    t = Table(title=f"generation, {SIZE}×{SIZE} {SAMPLER} cfg {GUIDANCE} — {env['device']} ({env['device_name']}), "
                    f"{env['torch_threads']} threads, median of {result['settings']['repeats']}")
    for col in ("steps", "batch", "kaiga ms/img", "stock ms/img", "kaiga img/s", "stock img/s", "kaiga/stock",
                "max px diff"):
        t.add_column(col, justify="right")
    for c in result["throughput"]:
        t.add_row(str(c["steps"]), str(c["batch"]), f"{c['kaiga']['ms_per_image']:.1f}",
                  f"{c['stock']['ms_per_image']:.1f}", f"{c['kaiga']['images_per_s']:.2f}",
                  f"{c['stock']['images_per_s']:.2f}", f"{c['ratio_kaiga_over_stock']:.3f}", str(c["max_pixel_diff"]))
    console.print(t)

    cold = result["cold_start"]
    t = Table(title=f"cold start to first image ({cold['steps']} steps), seconds")
    for col in ("", "wall", "start+exit", "import", "load", "generate", "peak RSS MiB", "loader"):
        t.add_column(col, justify="right")
    for name in ("kaiga", "stock"):
        c = cold[name]
        t.add_row(name, f"{c['wall_s']:.2f}", f"{c['outside_s']:.2f}", f"{c['import_s']:.2f}",
                  f"{c['load_s']:.2f}", f"{c['generate_s']:.2f}", f"{c['peak_rss_mib']:.0f}",
                  c.get("loader", "Studio"))
    console.print(t)
    console.print(f"kaiga/stock cold-start wall: {cold['ratio_wall_kaiga_over_stock']:.3f}   "
                  f"(ratios < 1: kaiga faster)   commit {env['git_commit']}, torch {env['torch']}, "
                  f"diffusers {env['diffusers']}")


# --- main ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> tuple[Settings, Path]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model name or path (default: the bundled default model)")
    ap.add_argument("--repeats", type=int, default=None, help=f"timed runs per cell (default {FULL_REPEATS}; "
                                                              f"{QUICK_REPEATS} with --quick)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 steps, batch 1 and 2, 1 repeat")
    ap.add_argument("--device", default=None, help="cpu, cuda, mps (default: what kaiga picks)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads here and in subprocesses "
                                                              "(default: torch's own choice)")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results")
    a = ap.parse_args(argv)
    if a.repeats is not None and a.repeats < 1:
        ap.error("--repeats must be at least 1")
    steps, batches, repeats, cold = ((QUICK_STEPS, QUICK_BATCHES, QUICK_REPEATS, QUICK_COLD_STEPS) if a.quick
                                     else (FULL_STEPS, FULL_BATCHES, FULL_REPEATS, FULL_COLD_STEPS))
    settings = Settings(a.model, a.device, steps, batches, a.repeats or repeats, cold, a.threads, a.quick)
    return settings, a.json


def run(s: Settings) -> dict[str, Any]:
    from kaiga.models import load_model, model_hash, pick_device, resolve_model

    if s.threads:
        torch.set_num_threads(s.threads)
    device = pick_device(s.device)
    ref = resolve_model(s.model)
    model = load_model(ref, device)
    return {
        "schema": 1,
        "settings": {"model": ref.name, "model_path": str(ref.path), "model_hash": model_hash(ref),
                     "dtype": str(model.dtype).removeprefix("torch."), "prompt": PROMPT, "sampler": SAMPLER,
                     "guidance": GUIDANCE, "width": SIZE, "height": SIZE, "steps": list(s.steps),
                     "batches": list(s.batches), "repeats": s.repeats, "warmup": 1, "quick": s.quick},
        "environment": environment(device),
        "throughput": throughput(model, s, device),
        "cold_start": cold_start(s, ref.path, device),
    }


def main(argv: list[str] | None = None) -> None:
    settings, json_path = parse_args(argv)
    result = run(settings)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
