"""scripts/train_gpu.sh, the recipe of the shipped models, runs end to end (here on the CPU, two steps a stage)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_gpu.sh"


@pytest.mark.slow
def test_every_chain_trains_and_exports_a_model(tiny_scenes, tmp_path):
    env = {**os.environ, "PY": sys.executable, "DATA": str(tiny_scenes), "RUNS": str(tmp_path), "STEPS": "2", "SIZE": "tiny",
           "MINUTES": "5", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    for family in ("gan", "vae", "transformer"):
        runs = json.loads((tmp_path / family / "kaiga.json").read_text())["training"]["runs"]
        assert all(run["steps"] == 2 for run in runs) and runs[-1]["device"].startswith("cpu")
    assert [run["stage"] for run in json.loads((tmp_path / "transformer" / "kaiga.json").read_text())["training"]["runs"]] \
        == ["tokenizer", "scorer", "prior"]
    assert json.loads((tmp_path / "diffusion" / "kaiga.json").read_text())["family"] == "diffusion"
    assert (tmp_path / "diffusion" / "unet" / "diffusion_pytorch_model.safetensors").is_file()


def test_the_pairs_fine_tune_continues_a_model_and_records_its_run(tiny_scenes, tiny_model_dir, tmp_path):
    """scripts/finetune_diffusion_pairs.sh, v4 -> v5 of the shipped model, at two steps on a tiny model."""
    script = SCRIPT.with_name("finetune_diffusion_pairs.sh")
    env = {**os.environ, "PY": sys.executable, "DATA": str(tiny_scenes), "RUNS": str(tmp_path), "STEPS": "2",
           "FROM": str(tiny_model_dir), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    runs = json.loads((tmp_path / "diffusion" / "kaiga.json").read_text())["training"]["runs"]
    assert (runs[-1]["stage"], runs[-1]["steps"], runs[-1]["batch"], runs[-1]["lr"]) == ("denoiser", 2, 64, 2e-4)


def test_the_vae_and_the_gan_grow_from_a_trained_vae(tiny_scenes, tmp_path):
    """scripts/finetune_vae_gan_gpu.sh (and finetune_vae_prior.sh in it), scenes-vae v3 -> vae v4 and gan v3,
    at two steps a stage on a tiny VAE."""
    from kaiga.families.vae.model import ConditionalVAE

    vae = ConditionalVAE.create(ConditionalVAE.config_class.tiny()).save(tmp_path / "tiny-vae")
    env = {**os.environ, "PY": sys.executable, "DATA": str(tiny_scenes), "RUNS": str(tmp_path), "FROM": str(vae),
           "STEPS": "2", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", str(SCRIPT.with_name("finetune_vae_gan_gpu.sh"))], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    vae_info, gan_info = (json.loads((tmp_path / m / "kaiga.json").read_text()) for m in ("vae-mix/vae", "gan"))
    assert vae_info["config"]["prior_components"] == 16 and vae_info["config"]["beta"] == 60
    assert [(run["stage"], run["steps"]) for run in vae_info["training"]["runs"]] == [("prior", 2), ("vae", 2)]
    assert gan_info["config"]["g_mapping"] and gan_info["config"]["mismatch"] == 0.5
    assert [(run["stage"], run["steps"], run["batch"]) for run in gan_info["training"]["runs"]] == [("gan", 2, 128)] * 2
