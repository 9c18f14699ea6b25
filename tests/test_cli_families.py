"""The family commands end to end, as a person runs them: train vae (tiny), generate with it, explain, compare."""

from __future__ import annotations

import json
import subprocess
import sys

from PIL import Image

from kaiga.metadata import read_metadata


def training_runs(model_folder):
    """The runs a model's kaiga.json records (its "training" entry)."""
    return json.loads((model_folder / "kaiga.json").read_text())["training"]["runs"]


def kaiga(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_train_generate_explain_and_compare_a_vae(tmp_path, tiny_scenes):
    run = tmp_path / "vae-run"
    r = kaiga("train", "vae", "--data", str(tiny_scenes), "--out", str(run), "--steps", "3", "--batch-size", "4",
              "--size", "tiny", "--sample-every", "3")
    assert r.returncode == 0, r.stderr
    info = json.loads((run / "kaiga.json").read_text())
    assert info["family"] == "vae" and info["training"]["runs"][0]["steps"] == 3
    assert (run / "samples" / "step0000003.png").exists()

    r = kaiga("generate", "a red car in the city", "--model", str(run), "--seed", "4", "--n", "2",
              "--truncation", "0.8", "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    paths = r.stdout.split()
    record = read_metadata(paths[0]).record
    assert (record.family, record.seed, record.extra["truncation"]) == ("vae", 4, 0.8)
    assert Image.open(paths[0]).size == (256, 256)

    r = kaiga("generate", "a red car", "--model", str(run), "--width", "128", "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "width: a vae model makes 64×64 images only (got 128)" in r.stderr

    r = kaiga("explain", "a red car in the city", "--model", str(run), "--out", str(tmp_path / "walk.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "walk.png").width > 8 * 64

    results = tmp_path / "families.json"
    r = kaiga("eval", "families", str(run), "scenes-diffusion", "--batch", "2", "--repeats", "1", "--json", str(results))
    assert r.returncode == 0, r.stderr
    rows = json.loads(results.read_text())["models"]
    assert rows["vae-run"]["family"] == "vae" and rows["vae-run"]["params"] > 0
    assert rows["scenes-diffusion"]["speedup_over_diffusion"] == 1.0

    fidelity = tmp_path / "fidelity.json"
    r = kaiga("eval", "fidelity", "--model", str(run), "--n", "10", "--truncation", "0.5", "--json", str(fidelity))
    assert r.returncode == 0, r.stderr
    assert json.loads(fidelity.read_text())["settings"]["truncation"] == 0.5


def test_a_time_limit_ends_training_early_with_a_model(tmp_path, tiny_scenes):
    run = tmp_path / "vae-run"
    r = kaiga("train", "vae", "--data", str(tiny_scenes), "--out", str(run), "--steps", "100000", "--batch-size", "2",
              "--size", "tiny", "--max-minutes", "0.01")
    assert r.returncode == 0, r.stderr
    runs = training_runs(run)
    assert 1 <= runs[0]["steps"] < 100000 and runs[0]["device"].startswith("cpu")


def test_train_transformer_needs_a_stage_and_the_previous_one(tmp_path, tiny_scenes):
    r = kaiga("train", "transformer", "--data", str(tiny_scenes), "--out", str(tmp_path), "--stage", "prior")
    assert r.returncode == 2 and "stage prior needs --init" in r.stderr
    r = kaiga("train", "transformer", "--data", str(tiny_scenes), "--out", str(tmp_path), "--stage", "colour")
    assert r.returncode == 2 and "stage: must be tokenizer, prior or scorer" in r.stderr


def test_eval_alignment_takes_the_transformer_sampling_options(tmp_path):
    """A tiny transformer saved in its real format, scored on one category with its sampling options recorded."""
    from kaiga.families.transformer.config import TransformerConfig
    from kaiga.families.transformer.model import DalleTransformer

    model = DalleTransformer.create(TransformerConfig.tiny()).save(tmp_path / "tiny-transformer")
    out = tmp_path / "alignment.json"
    r = kaiga("eval", "alignment", "--model", str(model), "-k", "1", "-c", "single_object", "--temperature", "0.5",
              "--top-k", "4", "--top-p", "0.9", "--candidates", "2", "--json", str(out))
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    assert result["settings"] | {"temperature": 0.5, "top_k": 4, "top_p": 0.9, "candidates": 2} == result["settings"]
    assert result["categories"] == ["single_object"] and list(result["seen"]["categories"]) == ["single_object"]
    r = kaiga("eval", "alignment", "--model", str(model), "--temperature", "0", "--json", str(out))
    assert r.returncode == 2 and "temperature" in r.stderr and "Traceback" not in r.stderr


def test_a_family_fine_tune_starts_from_a_model_name(tmp_path, tiny_scenes):
    run = tmp_path / "vae-run"
    r = kaiga("train", "vae", "--data", str(tiny_scenes), "--out", str(run), "--init", "scenes-vae", "--steps", "1",
              "--batch-size", "2", "--sample-every", "0")
    assert r.returncode == 0, r.stderr
    runs = training_runs(run)
    assert len(runs) >= 2 and (runs[-1]["stage"], runs[-1]["steps"]) == ("vae", 1)  # the shipped model's runs, then this
    r = kaiga("train", "vae", "--data", str(tiny_scenes), "--out", str(tmp_path / "x"), "--init", "scenes-gan")
    assert r.returncode == 2 and "scenes-gan is a gan model, not a vae one" in r.stderr


def test_a_mixture_prior_for_a_trained_vae_then_a_gan_from_a_vae(tmp_path, tiny_scenes):
    from kaiga.families.vae.model import ConditionalVAE

    vae = ConditionalVAE.create(ConditionalVAE.config_class.tiny()).save(tmp_path / "tiny-vae")
    r = kaiga("train", "vae", "--data", str(tiny_scenes), "--out", str(tmp_path / "x"), "--stage", "prior")
    assert r.returncode == 2 and "stage prior needs --init" in r.stderr

    prior = tmp_path / "prior-run"
    r = kaiga("train", "vae", "--data", str(tiny_scenes), "--out", str(prior), "--init", str(vae), "--stage", "prior",
              "--prior-components", "3", "--steps", "2", "--batch-size", "2", "--sample-every", "0")
    assert r.returncode == 0, r.stderr
    info = json.loads((prior / "kaiga.json").read_text())
    assert info["config"]["prior_components"] == 3 and info["training"]["runs"][-1]["stage"] == "prior"
    r = kaiga("generate", "a red car", "--model", str(prior), "--seed", "1", "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr

    gan = tmp_path / "gan-run"
    r = kaiga("train", "gan", "--data", str(tiny_scenes), "--out", str(gan), "--init", str(vae), "--steps", "2",
              "--batch-size", "2", "--sample-every", "0", "--mismatch", "0.5", "--d-lr-ratio", "4")
    assert r.returncode == 0, r.stderr
    info = json.loads((gan / "kaiga.json").read_text())
    assert info["family"] == "gan" and info["config"]["g_mapping"] and info["training"]["runs"][-1]["stage"] == "gan"
    assert (info["config"]["mismatch"], info["config"]["d_lr_ratio"]) == (0.5, 4.0)
    r = kaiga("train", "gan", "--data", str(tiny_scenes), "--out", str(tmp_path / "y"), "--init", str(prior))
    assert r.returncode == 2 and "one-Gaussian prior" in r.stderr
