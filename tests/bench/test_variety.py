"""bench/variety.py: one picture per prompt measures 0, the renderer more; the script writes its JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "variety.py"


@pytest.fixture(scope="module")
def variety():
    spec = importlib.util.spec_from_file_location("bench_variety", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_picture_per_prompt_has_no_variety_and_the_renderer_has_some(variety):
    from kaiga.eval.alignment import oracle_generate
    from kaiga.eval.readout import ReadoutNet

    judge = ReadoutNet.load()
    suite, picked = variety.pick_cases(1)
    assert len(picked) == 10 and all(not case.held_out for _, case in picked)
    renders = oracle_generate(suite)

    def one_look(prompts, seeds):  # every seed of a prompt gets the image of that prompt's first seed
        first = {p: s for p, s in reversed(list(zip(prompts, seeds)))}
        return renders(prompts, [first[p] for p in prompts])

    assert variety.seed_variety(one_look, judge, picked[:3], k=3)["mean_distance"] == pytest.approx(0, abs=1e-4)
    assert variety.seed_variety(renders, judge, picked[:3], k=3)["mean_distance"] > 1


def test_the_script_writes_a_ratio_against_the_renderer(tmp_path, variety, tiny_model_dir):
    out = tmp_path / "variety.json"
    variety.main([str(tiny_model_dir), "--prompts-per-category", "1", "--k", "2", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["settings"]["prompts"] == 10 and result["models"]["renders"]["ratio"] == 1.0
    [row] = [v for k, v in result["models"].items() if k != "renders"]
    assert row["ratio"] >= 0 and set(row["categories"]) == set(result["models"]["renders"]["categories"])
