"""Smoke test of bench/threads.py: it runs end to end in --quick mode and writes every field. Never asserts on speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "threads.py"


@pytest.mark.slow
def test_quick_threads_benchmark_writes_the_expected_json(tmp_path):
    out = tmp_path / "threads.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["schema"] == 1 and result["command"][:2] == ["kaiga", "generate"]
    assert result["settings"] == {"threads": ["default", "1"], "loads": ["idle", "busy"], "repeats": 1, "quick": True,
                                  "busy_processes": 1}
    assert {"cores", "torch", "kaiga", "git_commit", "date", "load_average_at_start"} <= result["environment"].keys()
    cells = {(c["load"], c["threads"]): c for c in result["cells"]}
    assert set(cells) == {("idle", "default"), ("idle", "1"), ("busy", "default"), ("busy", "1")}
    for (load, setting), c in cells.items():
        assert c["wall_s"] > 0 and len(c["runs"]) == 1 and c["torch_threads"] >= 1
        if setting == "1":
            assert c["torch_threads"] == 1
    assert cells[("idle", "default")]["torch_threads"] <= result["environment"]["cores"]
    assert set(result["ratio_over_1_thread"]) == {"idle/default", "busy/default"}
    assert "wrote" in r.stdout
