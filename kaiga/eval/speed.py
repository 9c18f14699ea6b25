"""Generation speed: kaiga against stock diffusers, on the same weights, measured in one run.

This is what `kaiga bench` runs (and `bench/generate.py`, a wrapper of it); bench/README.md explains
every field of the JSON it returns.

1. Throughput. For each cell (steps × batch; DDIM, guidance 3.0, the model's native size) the wall
   time of one call that returns PIL images, divided by the batch: ms/image and images/s. "kaiga" is
   `kaiga.pipelines.text_to_image`; "stock" is diffusers' `StableDiffusionPipeline` built from the
   very same loaded modules (same tensors in memory) with a fresh `DDIMScheduler`. Each side gets one
   warm-up call per cell, then `repeats` timed calls, interleaved kaiga, stock, kaiga, stock, … so
   that machine noise (other processes, thermal throttling) hits both alike; the median is reported.
2. Ratio = kaiga ÷ stock for every figure. Below 1 kaiga is faster (or smaller), above 1 slower;
   0.9 means kaiga takes 10 % less time per image. Both sides draw the same per-image noise, so the
   warm-up images should agree (`max_pixel_diff`, in grey levels), which shows they did the same work.
3. Cold start to first image: a fresh Python subprocess that imports, loads the model and makes one
   image (at the largest step count). `wall_s` is timed around `subprocess.run`, so it includes
   interpreter start; the subprocess reports its own split (import_s, load_s, generate_s). The stock
   side loads the folder with `StableDiffusionPipeline.from_pretrained` when it can, else from
   kaiga's loaded components (then `loader` says so and `loader_note` says why).
4. Peak memory of each cold-start subprocess, in MiB: resident memory (VmHWM on Linux, where
   `ru_maxrss` would also carry the parent's peak across fork+exec), and CUDA memory where it ran on
   a GPU.
5. The environment: versions, cores, torch threads, device, git commit, date, model hash.

Hand-written: no library times two pipelines on one set of loaded weights, interleaved, with cold
starts in fresh processes. Timings are wall-clock, so the machine should be otherwise idle.

Example:
    >>> side_summary([0.30, 0.20, 0.25], batch=2)  # three timed calls of a batch of 2, in seconds
    {'ms_per_image': 125.0, 'images_per_s': 8.0, 'ms_per_image_runs': [150.0, 100.0, 125.0]}
    >>> ratio(120.0, 100.0)  # kaiga takes 20 % longer
    1.2
"""

from __future__ import annotations

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

from kaiga.request import LIMITS

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline

    from kaiga.families.diffusion.model import LatentDiffusion

SCHEMA = 1  # of the results; bumped when a field changes meaning
PROMPT = "a red car"
SAMPLER = "ddim"
GUIDANCE = 3.0
RESULT_MARK = "BENCH_RESULT "  # prefix of the JSON line a cold-start subprocess prints

Generate = Callable[[], list[Image.Image]]
Progress = Callable[[str], None]


def _check(name: str, values, lo: int, hi: int) -> None:
    if not values or any(not lo <= v <= hi for v in values):
        got = ", ".join(map(str, values)) or "nothing"
        raise ValueError(f"{name}: each must be between {lo} and {hi} (got {got})")


@dataclass(frozen=True)
class SpeedConfig:
    """What to measure. `FULL` and `QUICK` are the presets; `dataclasses.replace` changes one field."""

    model: str | None = None                 # name or path; None: the bundled default model
    device: str | None = None                # cpu, cuda or mps; None: what kaiga picks
    steps: tuple[int, ...] = (4, 20)         # sampling steps of the throughput cells
    batch_sizes: tuple[int, ...] = (1, 16)   # images per call of the throughput cells
    repeats: int = 3                         # timed calls per side per cell, and cold starts per side
    cold_start: bool = True                  # also time fresh processes to their first image
    size: int | None = None                  # image side in pixels; None: the model's native size
    threads: int | None = None               # torch threads, here and in the subprocesses; None: torch's choice
    quick: bool = False                      # a smoke run; only recorded in the results
    precision: str = "fp32"                  # kaiga's side: fp32 or bf16 autocast (kaiga/pipelines/precision.py)
    backend: str = "eager"                   # kaiga's side: eager or jit (kaiga/families/diffusion/traced.py)

    def __post_init__(self):
        _check("steps", self.steps, *LIMITS["steps"])
        _check("batch_sizes", self.batch_sizes, *LIMITS["n"])  # a batch is one request of n images
        _check("repeats", [self.repeats], 1, 1000)
        if self.threads is not None:
            _check("threads", [self.threads], 1, 1024)
        from kaiga.pipelines.precision import check_precision

        check_precision(self.precision)
        from kaiga.families.diffusion.traced import check_backend

        check_backend(self.backend)
        if self.size is not None:
            _check("size", [self.size], *LIMITS["width"])
            if self.size % 8:
                raise ValueError(f"size: must be a multiple of 8 (got {self.size})")

    @property
    def cold_steps(self) -> int:
        """Steps of the cold-start image: the largest of the grid, as a user's first image would take."""
        return max(self.steps)


FULL = SpeedConfig()
QUICK = SpeedConfig(steps=(2,), batch_sizes=(1, 2), repeats=1, quick=True)


class ColdStartError(RuntimeError):
    """A cold-start subprocess failed; the message carries the end of its stderr."""


def ratio(kaiga: float, stock: float) -> float:
    """kaiga ÷ stock, to 3 decimals: below 1 kaiga is faster or smaller."""
    return round(kaiga / stock, 3)


# --- environment -----------------------------------------------------------------------------------
def git_commit() -> str | None:
    """The checkout kaiga runs from (None when it is not a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


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
def kaiga_generate(model: LatentDiffusion, steps: int, size: int, seeds: list[int], precision: str = "fp32",
                   backend: str = "eager") -> Generate:
    from kaiga.families.diffusion.traced import compute_backend
    from kaiga.pipelines.precision import compute_precision
    from kaiga.pipelines.text_to_image import text_to_image
    from kaiga.request import GenerationRequest

    request = GenerationRequest(prompt=PROMPT, steps=steps, guidance=GUIDANCE, sampler=SAMPLER, width=size,
                                height=size, n=len(seeds))

    def run() -> list[Image.Image]:
        with compute_precision(model.device, precision), compute_backend(backend):
            return text_to_image(model, request, seeds, batch_size=len(seeds))

    return run


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


def stock_generate(pipe: StableDiffusionPipeline, steps: int, size: int, seeds: list[int]) -> Generate:
    def run() -> list[Image.Image]:
        generators = [torch.Generator().manual_seed(s) for s in seeds]  # on CPU, as kaiga draws its noise
        return pipe(PROMPT, num_inference_steps=steps, guidance_scale=GUIDANCE, height=size, width=size,
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
    """Largest |a − b| over paired images, in grey levels 0–255."""
    return max(int(np.abs(np.asarray(x, np.int16) - np.asarray(y, np.int16)).max()) for x, y in zip(a, b))


def side_summary(seconds: list[float], batch: int) -> dict[str, Any]:
    """ms/image and images/s of one side of a cell: the median over its timed calls."""
    ms = [s * 1000 / batch for s in seconds]
    median = statistics.median(ms)
    return {"ms_per_image": round(median, 2), "images_per_s": round(1000 / median, 3),
            "ms_per_image_runs": [round(m, 2) for m in ms]}


def measure_cell(model: LatentDiffusion, pipe: StableDiffusionPipeline, steps: int, batch: int, size: int,
                 repeats: int, device: torch.device, precision: str = "fp32", backend: str = "eager") -> dict[str, Any]:
    """One warm-up each, then kaiga and stock alternately, `repeats` times."""
    seeds = list(range(batch))
    runs = {"kaiga": kaiga_generate(model, steps, size, seeds, precision, backend),
            "stock": stock_generate(pipe, steps, size, seeds)}
    warm = {name: fn() for name, fn in runs.items()}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            seconds[name].append(timed(fn, device)[0])
    kaiga, stock = (side_summary(seconds[n], batch) for n in ("kaiga", "stock"))
    return {"steps": steps, "batch": batch, "kaiga": kaiga, "stock": stock,
            "ratio_kaiga_over_stock": ratio(kaiga["ms_per_image"], stock["ms_per_image"]),
            "max_pixel_diff": max_pixel_diff(warm["kaiga"], warm["stock"])}


def throughput(model: LatentDiffusion, config: SpeedConfig, size: int, device: torch.device,
               say: Progress) -> list[dict[str, Any]]:
    pipe = stock_pipeline(model)
    cells = []
    for steps in config.steps:
        for batch in config.batch_sizes:
            say(f"throughput: {steps} steps × batch {batch}, each side 1 warm-up + {config.repeats} timed")
            cells.append(measure_cell(model, pipe, steps, batch, size, config.repeats, device, config.precision,
                                      config.backend))
    return cells


# --- cold start ------------------------------------------------------------------------------------
# Both scripts time themselves from their first line and print one JSON line prefixed RESULT_MARK.
# argv: model (kaiga: name or path, "" for the default; stock: the folder or file), device, steps, size.
_COMMON_HEAD = """\
import time
t_start = time.perf_counter()
import json, resource, sys
model_arg, device_arg, steps, size = sys.argv[1] or None, sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
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
import torch  # already imported by both sides
peak_cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_initialized() else None
result.update(import_s=t_import - t_start, load_s=t_load - t_import, generate_s=t_done - t_load,
              in_process_s=t_done - t_start, peak_rss_mib=peak, peak_rss_source=source, ru_maxrss_mib=maxrss,
              peak_cuda_mib=peak_cuda, image_size=list(images[0].size))
print("%s" + json.dumps(result), flush=True)
""" % RESULT_MARK

KAIGA_COLD = _COMMON_HEAD + """\
from kaiga import Studio
t_import = time.perf_counter()
studio = Studio(device=device_arg)
loaded = studio.load(model_arg)  # what generate() does on first use; split out to time it
t_load = time.perf_counter()
images = [g.image for g in studio.generate("a red car", seed=0, steps=steps, width=size, height=size,
                                           model=model_arg)]
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
    from kaiga.model_files import load_model, resolve_model
    m = load_model(resolve_model(model_arg), device)
    pipe = StableDiffusionPipeline(vae=m.vae, text_encoder=m.text_encoder, tokenizer=m.tokenizer, unet=m.unet,
                                   scheduler=DDIMScheduler.from_config(m.scheduler_config), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    result.update(loader="kaiga-components", loader_note=f"from_pretrained failed: {type(e).__name__}: {e}"[:500])
pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
pipe = pipe.to(device)
pipe.set_progress_bar_config(disable=True)
t_load = time.perf_counter()
images = pipe("a red car", num_inference_steps=steps, guidance_scale=3.0, height=size, width=size,
              generator=[torch.Generator().manual_seed(0)], output_type="pil").images
""" + _COMMON_TAIL

COLD_SCRIPTS = {"kaiga": KAIGA_COLD, "stock": STOCK_COLD}


def child_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def cold_start_once(script: str, model_arg: str, device: torch.device, steps: int, size: int,
                    threads: int | None) -> dict[str, Any]:
    cmd = [sys.executable, "-c", script, model_arg, str(device), str(steps), str(size)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(threads))
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        raise ColdStartError(f"cold-start subprocess failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, **json.loads(lines[-1][len(RESULT_MARK):])}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def cold_start_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the numeric fields; the other fields from the last run; every run's numbers kept."""
    numeric = [k for k, v in runs[0].items() if _is_number(v)]
    out: dict[str, Any] = {k: v for k, v in runs[-1].items() if k not in numeric}
    for k in numeric:
        out[k] = round(statistics.median(r[k] for r in runs), 3)
    out["outside_s"] = round(max(out["wall_s"] - out["in_process_s"], 0.0), 3)  # interpreter start + exit
    out["runs"] = [{k: round(r[k], 3) for k in numeric} for r in runs]
    return out


def cold_start(config: SpeedConfig, model_path: Path, size: int, device: torch.device,
               say: Progress) -> dict[str, Any]:
    """kaiga gets the model as the user named it (Studio resolves it); stock gets the resolved path."""
    model_args = {"kaiga": config.model or "", "stock": str(model_path)}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in COLD_SCRIPTS}
    for i in range(config.repeats):  # interleaved, like the throughput cells
        for name, script in COLD_SCRIPTS.items():
            say(f"cold start {i + 1}/{config.repeats}: {name} (a fresh process to its first image)")
            runs[name].append(cold_start_once(script, model_args[name], device, config.cold_steps, size,
                                              config.threads))
    kaiga, stock = (cold_start_summary(runs[n]) for n in ("kaiga", "stock"))
    on_cuda = kaiga["peak_cuda_mib"] is not None and stock["peak_cuda_mib"] is not None
    return {
        "steps": config.cold_steps,
        "ratio_wall_kaiga_over_stock": ratio(kaiga["wall_s"], stock["wall_s"]),
        "ratio_peak_rss_kaiga_over_stock": ratio(kaiga["peak_rss_mib"], stock["peak_rss_mib"]),
        "ratio_peak_cuda_kaiga_over_stock": ratio(kaiga["peak_cuda_mib"], stock["peak_cuda_mib"]) if on_cuda else None,
        "kaiga": kaiga,
        "stock": stock,
    }


# --- the whole run ---------------------------------------------------------------------------------
def run(config: SpeedConfig, on_progress: Progress | None = None) -> dict[str, Any]:
    """Every figure, kaiga beside stock diffusers, as one JSON-ready dict (see bench/README.md).

    `on_progress(message)` hears what is being measured next. Raises ModelError for a model that
    cannot be loaded, RequestError for a size it cannot make, ColdStartError if a subprocess fails.
    """
    from kaiga.capabilities import Capabilities, check_request
    from kaiga.model_files import load_model, model_hash, pick_device, resolve_model
    from kaiga.request import GenerationRequest

    say = on_progress or (lambda message: None)
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        device = pick_device(config.device)
        ref = resolve_model(config.model)
        say(f"loading {ref.name} on {device}")
        model = load_model(ref, device)
        size = config.size or int(model.info.get("native_size", 64))
        # Refuse a size this model cannot make before anything is timed.
        check_request(Capabilities.from_info(model.info), GenerationRequest(prompt=PROMPT, width=size, height=size))
        settings = {"model": ref.name, "model_path": str(ref.path), "model_hash": model_hash(ref),
                    "dtype": str(model.dtype).removeprefix("torch."), "prompt": PROMPT, "sampler": SAMPLER,
                    "guidance": GUIDANCE, "width": size, "height": size, "steps": list(config.steps),
                    "batches": list(config.batch_sizes), "repeats": config.repeats, "warmup": 1,
                    "cold_start": config.cold_start, "quick": config.quick, "precision": config.precision,
                    "backend": config.backend}
        env = environment(device)
        cells = throughput(model, config, size, device, say)
        del model  # free it: each cold-start process loads its own copy
        cold = cold_start(config, ref.path, size, device, say) if config.cold_start else None
    finally:
        torch.set_num_threads(threads_before)
    return {"schema": SCHEMA, "settings": settings, "environment": env, "throughput": cells, "cold_start": cold}


def write_json(result: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
