"""Does generation hold up when the CPU is shared? The README command, timed with each thread setting,
on an idle machine and beside one busy process.

Each run is the README's Quick start command in a fresh process, as a user types it:

    kaiga generate "a red car in the snow at night" --seed 7 --n 4

(its PNGs go to a temporary folder), timed wall-clock from start to exit, imports and model load
included. Thread settings: `default` (no --threads and no $OMP_NUM_THREADS: kaiga's own choice),
`1` (--threads 1) and `all` (--threads <every core>: what torch alone would take). Loads: `idle`
(nothing started; the load average before each run is recorded, since this script cannot make the
machine idle) and `busy` (one competing process, a pure-Python busy loop this script starts before the
runs and stops after them; it also ends by itself after --busy-limit seconds). Settings and loads are
interleaved, repeat after repeat; the median of each cell is reported, every run is kept.

Usage:
    python bench/threads.py [--repeats 3] [--json bench/results/threads.json]
    python bench/threads.py --quick     # smoke run: 1 step, 1 image, 1 repeat, settings default and 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "threads.json"
README_ARGS = ["generate", "a red car in the snow at night", "--seed", "7", "--n", "4"]
QUICK_ARGS = ["generate", "a red car in the snow at night", "--seed", "7", "--n", "1", "--steps", "1", "--upscale", "1"]
SCHEMA = 1

# The command in a fresh process through kaiga's entry point; afterwards, on stderr's last line, the
# torch threads it ran with (what `default` chose).
RUN = """
import json, sys
from kaiga.cli import main
sys.argv = ["kaiga", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as e:
    if e.code:
        raise
import torch
print("torch_threads", torch.get_num_threads(), file=sys.stderr)
"""
# A bounded busy loop: the competing process (pure Python, one core, no memory to speak of).
BUSY = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def time_run(args: list[str], setting: str, out: Path) -> dict:
    """One run of `kaiga ARGS` with thread `setting`: wall seconds, the torch threads it used, the load before."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # `default` means kaiga's choice
    threads = {"default": [], "1": ["--threads", "1"], "all": ["--threads", str(cores())]}[setting]
    load = load_average()
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", RUN, json.dumps([*args, "--out", str(out), *threads])],
                       capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"kaiga {' '.join(args)} ({setting} threads) failed:\n{r.stderr[-2000:]}")
    used = [line.split()[1] for line in r.stderr.splitlines() if line.startswith("torch_threads ")]
    return {"wall_s": round(wall, 3), "torch_threads": int(used[-1]), "load_average_before": load}


class Busy:
    """One competing busy process for the length of a `with` block (and never longer than `limit_s`)."""

    def __init__(self, limit_s: float):
        self.limit_s = limit_s
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Busy:
        self.process = subprocess.Popen([sys.executable, "-c", BUSY, str(self.limit_s)])
        time.sleep(0.5)  # let it reach the run queue before the timed process starts
        return self

    def __exit__(self, *exc) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def measure(args: list[str], settings: list[str], loads: list[str], repeats: int, busy_limit_s: float,
            on_run=print) -> list[dict]:
    """Every (load, setting) cell, `repeats` runs each, interleaved."""
    runs: dict[tuple[str, str], list[dict]] = {(load, s): [] for load in loads for s in settings}
    with tempfile.TemporaryDirectory(prefix="kaiga-bench-threads-") as tmp:
        for repeat in range(repeats):
            for load in loads:
                with Busy(busy_limit_s) if load == "busy" else contextlib.nullcontext():
                    for setting in settings:
                        run = time_run(args, setting, Path(tmp) / f"{load}-{setting}-{repeat}")
                        runs[(load, setting)].append(run)
                        on_run(f"{load:4} {setting:>7} threads ({run['torch_threads']}): {run['wall_s']:.2f} s")
    return [{"load": load, "threads": setting, "torch_threads": rs[-1]["torch_threads"],
             "wall_s": round(statistics.median(r["wall_s"] for r in rs), 3), "runs": rs}
            for (load, setting), rs in runs.items()]


def ratios(cells: list[dict]) -> dict:
    """Each cell's median over the same load's 1-thread median (above 1: slower than one thread)."""
    one = {c["load"]: c["wall_s"] for c in cells if c["threads"] == "1"}
    return {f"{c['load']}/{c['threads']}": round(c["wall_s"] / one[c["load"]], 3)
            for c in cells if c["load"] in one and c["threads"] != "1"}


def environment() -> dict:
    import torch

    from kaiga.eval.speed import git_commit
    from kaiga.version import __version__

    return {"cores": cores(), "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "kaiga": __version__, "git_commit": git_commit(),
            "load_average_at_start": load_average(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="Runs per cell; the median is reported.")
    ap.add_argument("--settings", default="default,1,all", help="Thread settings, comma-separated: default, 1, all.")
    ap.add_argument("--busy-limit", type=float, default=1800.0,
                    help="Seconds after which the competing process ends by itself, in case this script dies.")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--quick", action="store_true", help="Smoke run: 1 step, 1 image, 1 repeat, settings default and 1.")
    a = ap.parse_args(argv)
    settings = ["default", "1"] if a.quick else a.settings.split(",")
    if not set(settings) <= {"default", "1", "all"} or a.repeats < 1:
        ap.error("--settings: default, 1 and/or all; --repeats: at least 1")
    args = QUICK_ARGS if a.quick else README_ARGS
    repeats = 1 if a.quick else a.repeats
    env = environment()
    cells = measure(args, settings, ["idle", "busy"], repeats, a.busy_limit, on_run=lambda m: print(m, file=sys.stderr))
    result = {"schema": SCHEMA, "command": ["kaiga", *args],
              "settings": {"threads": settings, "loads": ["idle", "busy"], "repeats": repeats, "quick": a.quick,
                           "busy_processes": 1},
              "environment": env, "cells": cells, "ratio_over_1_thread": ratios(cells)}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=1) + "\n")
    for c in cells:
        print(f"{c['load']:4} {c['threads']:>7} threads ({c['torch_threads']}): {c['wall_s']:.2f} s")
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
