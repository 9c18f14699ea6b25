"""`kaiga eval ...` and `kaiga train readout` as a person runs them: real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys

from PIL import Image


def kaiga(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_alignment_of_the_renders_then_the_report(tmp_path):
    r = kaiga("eval", "alignment", "--model", "renders", "-k", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "docs/eval/renders/alignment.json").read_text())
    assert result["model"] == "renders" and result["seen"]["overall"] >= 0.85
    assert Image.open(tmp_path / "docs/eval/renders/alignment-worst.png").width > 300
    assert "held-out" in r.stdout
    r = kaiga("eval", "report", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "| `renders` |" in (tmp_path / "docs/EVAL.md").read_text()


def test_alignment_of_some_categories_goes_to_its_own_file(tmp_path):
    r = kaiga("eval", "alignment", "--model", "renders", "-k", "1", "-c", "position", "-c", "two_objects", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "docs/eval/renders"
    result = json.loads((out / "alignment-two_objects+position.json").read_text())
    assert result["categories"] == ["two_objects", "position"] and result["held_out"] is None
    assert (out / "alignment-two_objects+position-worst.png").exists()
    assert not (out / "alignment.json").exists()  # the report's file holds only whole-suite runs
    r = kaiga("eval", "alignment", "--model", "renders", "-c", "colour")
    assert r.returncode == 2 and "colours" in r.stderr and "Traceback" not in r.stderr


def test_fidelity_of_a_model_writes_scores_and_the_floor(tmp_path, tiny_model_dir):
    out = tmp_path / "fid.json"
    r = kaiga("eval", "fidelity", "--model", str(tiny_model_dir), "--n", "40", "--steps", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    assert result["n"] == 40 and {"fid", "kid_mean", "precision", "recall"} <= set(result["model"])
    # KID is unbiased at small N (FID is not: 40 rows of 256-d features); renders beat a random model
    assert result["floor"]["kid_mean"] < result["model"]["kid_mean"]
    assert "floor" in r.stdout


def test_eval_bad_input_is_one_line_exit_2(tmp_path):
    r = kaiga("eval", "alignment", "--steps", "0")
    assert r.returncode == 2 and "steps" in r.stderr and "Traceback" not in r.stderr
    r = kaiga("eval", "alignment", "--model", str(tmp_path / "nothing-here"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = kaiga("eval", "fidelity", "--model", "renders")
    assert r.returncode == 2 and "floor" in r.stderr


def test_train_readout_writes_a_judge_with_its_accuracy(tmp_path):
    r = kaiga("train", "readout", "--out", str(tmp_path / "run"), "--steps", "3", "--batch-size", "8",
              "--n-train", "100", "--n-test", "20")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "run/readout/readout.json").read_text())
    assert set(cfg["accuracy"]["renders_heldout"]) >= {"object", "colour", "style", "all"}
    assert cfg["accuracy"]["steps"] == 3


def test_fidelity_in_a_torchscript_feature_space(tmp_path, tiny_model_dir):
    """--features takes a TorchScript network (the format of the standard FID Inception), here a tiny one."""
    import torch

    class TinyInception(torch.nn.Module):
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            x = torch.nn.functional.interpolate(x.float(), size=(16, 16), mode="area")  # [N, 3, 16, 16]
            return x.flatten(1)[:, :24]

    script = tmp_path / "tiny-inception.pt"
    torch.jit.script(TinyInception()).save(str(script))
    out = tmp_path / "fid.json"
    r = kaiga("eval", "fidelity", "--model", str(tiny_model_dir), "--n", "10", "--steps", "1", "--json", str(out),
              "--features", str(script))
    assert r.returncode == 0, r.stderr
    extra = json.loads(out.read_text())["extra"]
    assert extra["features"] == "tiny-inception.pt (24-d)" and extra["model"]["n_fake"] == 10
    (tmp_path / "not-a-model.pt").write_bytes(b"nonsense")
    r = kaiga("eval", "fidelity", "--model", str(tiny_model_dir), "--n", "10", "--features", str(tmp_path / "not-a-model.pt"))
    assert r.returncode == 2 and "not a TorchScript module" in r.stderr and "Traceback" not in r.stderr


def test_alignment_on_the_everyday_suite_goes_to_its_own_file(tmp_path):
    r = kaiga("eval", "alignment", "--model", "renders", "-k", "1", "--suite", "everyday", "-c", "weather", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "docs/eval/renders/alignment-everyday-weather.json").read_text())
    assert result["suite"] == "everyday" and len(result["prompts"]) == 12 and result["seen"]["overall"] >= 0.75
    r = kaiga("eval", "alignment", "--model", "renders", "--suite", "nope", cwd=tmp_path)
    assert r.returncode == 2 and "--suite: unknown suite 'nope'" in r.stderr and "Traceback" not in r.stderr
