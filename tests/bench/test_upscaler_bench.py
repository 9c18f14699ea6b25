"""Smoke test of bench/upscaler.py: it runs end to end and writes every figure. Never asserts on speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "upscaler.py"


def test_the_upscaler_bench_writes_every_figure(tmp_path):
    out = tmp_path / "upscaler.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--n", "4", "--generated", "0", "--threads", "1",
                           "--json", str(out), "--grid", str(tmp_path / "grids")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    held = result["held_out_renders"]
    assert held["n"] == 4 and set(held) == {"n", "truth_sharpness", "bicubic", "lanczos", "learned"}
    assert set(held["learned"]) == {"psnr_db", "psnr_p10_db", "ssim", "perceptual", "sharpness"}
    assert {"batch1_ms_per_image", "batch16_ms_per_image"} <= set(result["speed"]["learned"])
    assert (tmp_path / "grids" / "renders.png").exists()
