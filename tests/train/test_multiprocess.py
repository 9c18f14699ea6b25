"""Two processes train one tiny model together (torchrun + gloo, as on a CPU cluster)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kaiga


@pytest.mark.slow
def test_two_processes_train_one_model(tiny_scenes, tmp_path):
    out = tmp_path / "run"
    vae = tmp_path / "vae-run"
    cli = str(Path(kaiga.__file__).parent / "cli.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, cli, "train", "autoencoder", "--data", str(tiny_scenes), "--out", str(vae),
                    "--steps", "2", "--size", "tiny", "--batch-size", "4"], check=True, env=env, timeout=300)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517", cli,
         "train", "diffusion", "--data", str(tiny_scenes), "--out", str(out), "--vae", str(vae),
         "--steps", "6", "--size", "tiny", "--batch-size", "4", "--sample-every", "0"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["processes"] == 2 and state["step"] == 6
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").is_file()
