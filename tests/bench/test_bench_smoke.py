"""Smoke test of bench/generate.py: it runs end to end and writes every field. Never asserts on speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kaiga.families.diffusion.model import LatentDiffusion, tiny_config

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "generate.py"
SIDE_KEYS = {"ms_per_image", "images_per_s", "ms_per_image_runs"}
COLD_NUMBERS = ("wall_s", "import_s", "load_s", "generate_s", "in_process_s", "peak_rss_mib")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


@pytest.mark.slow
def test_quick_benchmark_writes_the_expected_json(tmp_path):
    torch.manual_seed(0)
    model_dir = LatentDiffusion.create(tiny_config()).save(tmp_path / "tiny-diffusion")
    out = tmp_path / "generate.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--model", str(model_dir), "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())

    assert {"schema", "settings", "environment", "throughput", "cold_start"} <= result.keys()
    settings = result["settings"]
    assert settings["model_path"] == str(model_dir)
    assert (settings["steps"], settings["batches"], settings["repeats"], settings["quick"]) == ([2], [1, 2], 1, True)
    assert (settings["sampler"], settings["guidance"], settings["width"], settings["height"]) == ("ddim", 3.0, 64, 64)

    env = result["environment"]
    for key in ("torch", "diffusers", "cpu_count", "torch_threads", "device", "git_commit", "date"):
        assert key in env
    assert env["torch_threads"] == 1 and _positive(env["cpu_count"])

    cells = result["throughput"]
    assert [(c["steps"], c["batch"]) for c in cells] == [(2, 1), (2, 2)]
    for c in cells:
        for side in ("kaiga", "stock"):
            assert SIDE_KEYS <= c[side].keys()
            assert _positive(c[side]["ms_per_image"]) and _positive(c[side]["images_per_s"])
            assert len(c[side]["ms_per_image_runs"]) == 1
        assert _positive(c["ratio_kaiga_over_stock"])
        assert c["max_pixel_diff"] <= 1  # same weights, same noise: the same images

    cold = result["cold_start"]
    assert cold["steps"] == 2 and _positive(cold["ratio_wall_kaiga_over_stock"])
    for side in ("kaiga", "stock"):
        for key in COLD_NUMBERS:
            assert _positive(cold[side][key]), (side, key, cold[side].get(key))
        assert cold[side]["wall_s"] >= cold[side]["in_process_s"]
        assert cold[side]["image_size"] == [64, 64]
        assert len(cold[side]["runs"]) == 1
    assert cold["stock"]["loader"] in ("from_pretrained", "kaiga-components")


def test_the_training_step_bench_times_both_precisions(tmp_path):
    out = tmp_path / "train_step.json"
    script = SCRIPT.with_name("train_step.py")
    proc = subprocess.run([sys.executable, str(script), "--quick", "--threads", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert all(_positive(result["seconds_per_step"][p]) for p in ("fp32", "bf16"))
    assert _positive(result["bf16_over_fp32"]) and 0 < result["text_encoder_share_fp32"] < 1
