"""docs/EVAL.md is made from result files only, and says what is missing."""

from __future__ import annotations

import json

from kaiga.eval.prompts import CATEGORIES
from kaiga.eval.report import write_report

JUDGE = {"widths": [16, 32, 64, 128], "accuracy": {"renders_any": {"object": 0.99, "all": 0.95}, "steps": 10,
                                                   "n_train": 100, "n_test": 50}}


def _alignment(seen: float) -> dict:
    cats = {c: seen for c in CATEGORIES}
    return {"samples_per_prompt": 2, "seen": {"overall": seen, "categories": cats},
            "held_out": {"overall": seen / 2, "categories": {"colours": seen / 2}}}


def test_report_tables_come_from_the_json_files(tmp_path):
    results = tmp_path / "eval"
    (results / "my-model").mkdir(parents=True)
    (results / "renders").mkdir()
    (results / "my-model" / "alignment.json").write_text(json.dumps(_alignment(0.5)))
    (results / "renders" / "alignment.json").write_text(json.dumps(_alignment(0.98)))
    fid = {"fid": 6.0, "kid_mean": 0.01, "precision": 0.7, "recall": 0.6}
    (results / "my-model" / "fidelity.json").write_text(json.dumps(
        {"n": 100, "model": fid, "floor": {**fid, "fid": 2.0}}))
    families = tmp_path / "families.json"
    families.write_text(json.dumps({"settings": {"batch": 16}, "models": {
        "my-model": {"family": "gan", "params": 2_500_000, "ms_per_image": 2.0, "speedup_over_diffusion": 40.0,
                     "training": {"runs": [{"stage": "gan", "seconds": 5400, "device": "cpu (2 threads)"}],
                                  "seconds": 5400}},
        "on-a-gpu": {"family": "transformer", "params": 4_000_000, "ms_per_image": 20.0, "speedup_over_diffusion": 4.0,
                     "training": {"runs": [{"stage": "tokenizer", "seconds": 100, "device": "NVIDIA H100"},
                                           {"stage": "prior", "seconds": 200, "device": "NVIDIA H100"}],
                                  "seconds": 300}},
        "no-results": {"family": "vae", "params": 1_000_000, "ms_per_image": 1.0, "speedup_over_diffusion": 80.0,
                       "training": None}}}))
    text = write_report(tmp_path / "EVAL.md", results, tmp_path / "missing.json", readout_cfg=JUDGE,
                        installed=["my-model", "other-model"], families_json=families).read_text()
    assert "| gan | `my-model` | 0.500 / 0.250 | 6.0 (3.0× floor) | 0.0 | 2.0 (40.0× diffusion) | 2.5 M | 1.5 h (cpu (2 threads)) |" in text
    assert "| 4.0 M | 5 min (NVIDIA H100) |" in text
    assert "| vae | `no-results` | – / – | – | – | 1.0 (80.0× diffusion) | 1.0 M | – |" in text
    assert "without results yet: `other-model`" in text
    assert "| `my-model` | **0.500** | **0.250** |" in text
    assert text.index("| `my-model` |") < text.index("| `renders` |")  # the ceiling comes last
    assert "| `my-model` | 100 | 6.00 | 2.00 | 3.0× |" in text
    assert "No everyday results yet." in text
    everyday = {**_alignment(0.45), "prompts": [{"ignored_words": ["pooch"]}, {"ignored_words": []}],
                "prompts_with_ignored_words": 1}
    (results / "my-model" / "alignment-everyday.json").write_text(json.dumps(everyday))
    text = write_report(tmp_path / "EVAL.md", results, tmp_path / "missing.json", readout_cfg=JUDGE,
                        installed=["my-model"], families_json=families).read_text()
    assert "| `my-model` | **0.450** | 0.500 | 0.90 | 1 of 2 | 0.45 |" in text
    assert "| object | 0.990 |" in text
    assert "No benchmark results yet." in text


def test_an_empty_results_folder_says_what_to_run(tmp_path):
    text = write_report(tmp_path / "EVAL.md", tmp_path / "none", tmp_path / "none.json", readout_cfg=JUDGE,
                        installed=[], families_json=tmp_path / "none-families.json").read_text()
    assert "No alignment results yet." in text and "No fidelity results yet." in text
    assert "No family comparison yet" in text
