"""The speed benchmark on a tiny model: every field is there and every ratio is kaiga ÷ stock of the same run.

Timings never gate a test: only structure and positivity are checked. The cold start (fresh processes)
is exercised end to end by the slow smoke test in tests/bench.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from kaiga.cli import app
from kaiga.eval.speed import FULL, QUICK, SpeedConfig, cold_start_summary, ratio, run

SIDE_KEYS = {"ms_per_image", "images_per_s", "ms_per_image_runs"}


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


def _check_throughput(result: dict, steps: list[int], batches: list[int], repeats: int) -> None:
    cells = result["throughput"]
    assert [(c["steps"], c["batch"]) for c in cells] == [(s, b) for s in steps for b in batches]
    for c in cells:
        for side in ("kaiga", "stock"):
            figures = c[side]
            assert figures.keys() == SIDE_KEYS
            assert _positive(figures["ms_per_image"]) and _positive(figures["images_per_s"])
            assert figures["images_per_s"] == pytest.approx(1000 / figures["ms_per_image"], rel=1e-3)
            assert len(figures["ms_per_image_runs"]) == repeats
            assert all(_positive(m) for m in figures["ms_per_image_runs"])
        assert c["ratio_kaiga_over_stock"] == round(c["kaiga"]["ms_per_image"] / c["stock"]["ms_per_image"], 3)
        assert c["max_pixel_diff"] <= 1  # same weights, same noise: the same images


def test_run_reports_both_sides_and_their_ratio(tiny_model_dir):
    config = SpeedConfig(model=str(tiny_model_dir), device="cpu", steps=(1,), batch_sizes=(1, 2), repeats=1,
                         cold_start=False, threads=1)
    result = run(config)

    assert result.keys() == {"schema", "settings", "environment", "throughput", "cold_start"}
    assert result["schema"] == 1 and result["cold_start"] is None
    s = result["settings"]
    assert s["model_path"] == str(tiny_model_dir) and len(s["model_hash"]) == 10
    assert (s["steps"], s["batches"], s["repeats"], s["cold_start"], s["quick"]) == ([1], [1, 2], 1, False, False)
    assert (s["width"], s["height"], s["sampler"], s["dtype"]) == (64, 64, "ddim", "float32")
    env = result["environment"]
    assert env["device"] == "cpu" and env["torch_threads"] == 1 and _positive(env["cpu_count"])
    _check_throughput(result, [1], [1, 2], repeats=1)
    json.dumps(result)  # JSON-ready as it is


def test_cli_prints_the_table_and_writes_the_json(tiny_model_dir, tmp_path):
    out = tmp_path / "results" / "generate.json"
    r = CliRunner().invoke(app, ["bench", "--model", str(tiny_model_dir), "--device", "cpu", "--steps", "2",
                                 "--batch-sizes", "1,2", "--repeats", "2", "--no-cold-start", "--threads", "1",
                                 "--json", str(out)])
    assert r.exit_code == 0, r.output
    for header in ("kaiga ms/img", "stock ms/img", "kaiga img/s", "stock img/s", "kaiga/stock"):
        assert header in r.stdout
    assert r.stdout.rstrip().endswith(f"wrote {out}")
    result = json.loads(out.read_text())
    assert result["cold_start"] is None
    _check_throughput(result, [2], [1, 2], repeats=2)


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "steps: each must be between 1 and 150 (got 0)"),
    (["--batch-sizes", "1,32"], "batch-sizes: each must be between 1 and 16 (got 1, 32)"),
    (["--steps", "4,twenty"], "steps: a comma-separated list of whole numbers"),
    (["--size", "60"], "size: must be a multiple of 8 (got 60)"),
    (["--model", "no-such-model"], "model 'no-such-model' not found"),
])
def test_cli_refuses_bad_options_before_timing_anything(args, message, tmp_path):
    out = tmp_path / "generate.json"
    r = CliRunner().invoke(app, ["bench", "--no-cold-start", "--json", str(out), *args])
    assert r.exit_code == 2 and message in r.stderr, r.output
    assert not out.exists()


def test_help_states_the_defaults_of_the_presets():
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", CliRunner().invoke(app, ["bench", "--help"]).stdout).split())

    def csv(values):
        return ",".join(map(str, values))

    for full, quick in ((csv(FULL.steps), csv(QUICK.steps)), (csv(FULL.batch_sizes), csv(QUICK.batch_sizes)),
                        (FULL.repeats, QUICK.repeats)):
        assert f"default {full}; {quick} with --quick" in text
    assert "idle" in text


def test_quick_preset_and_overrides():
    config = replace(QUICK, steps=(3, 5))
    assert (config.batch_sizes, config.repeats, config.cold_steps, config.quick) == ((1, 2), 1, 5, True)
    assert FULL.cold_steps == 20  # the cold-start image takes as many steps as the largest cell


def test_cold_start_summary_takes_medians_and_keeps_every_run():
    runs = [{"wall_s": w, "in_process_s": w - 1, "peak_rss_mib": m, "peak_cuda_mib": None, "device": "cpu"}
            for w, m in ((9.0, 400.0), (7.0, 500.0), (8.0, 450.0))]
    s = cold_start_summary(runs)
    assert (s["wall_s"], s["in_process_s"], s["outside_s"], s["peak_rss_mib"]) == (8.0, 7.0, 1.0, 450.0)
    assert s["peak_cuda_mib"] is None and s["device"] == "cpu"
    assert [r["wall_s"] for r in s["runs"]] == [9.0, 7.0, 8.0]
    assert ratio(s["wall_s"], 10.0) == 0.8
