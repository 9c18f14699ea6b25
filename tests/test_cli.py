"""The `kaiga` command end to end, as a person runs it: a real subprocess, the bundled model."""

import json
import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from kaiga.metadata import read_metadata


def kaiga(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_generate_writes_pngs_that_carry_their_record(tmp_path):
    r = kaiga("generate", "a red car in the snow at night", "--seed", "7", "--n", "2", "--steps", "4",
              "--out", str(tmp_path), "--grid", "--negative", "blurry")
    assert r.returncode == 0, r.stderr
    paths = [p for p in r.stdout.split() if p.endswith(".png")]
    assert len(paths) == 3 and "grid-" in paths[-1]
    meta = read_metadata(paths[0])
    assert meta.source == "kaiga"
    rec = meta.record
    assert (rec.prompt, rec.negative_prompt, rec.seed, rec.steps, rec.model) == (
        "a red car in the snow at night", "blurry", 7, 4, "scenes-diffusion")
    assert read_metadata(paths[1]).record.seed == 8
    assert Image.open(paths[0]).size == (256, 256)  # 64 px upscaled ×4 for viewing
    params = meta.raw["parameters"].splitlines()
    assert params[0] == "a red car in the snow at night" and params[1] == "Negative prompt: blurry"
    assert re.match(r"Steps: 4, Sampler: DDIM, CFG scale: 3.0, Seed: 7, Size: 64x64, Model hash: [0-9a-f]{10}, "
                    r"Model: scenes-diffusion", params[2])

    info = kaiga("info", paths[0])
    assert info.returncode == 0, info.stderr
    assert "Seed: 7" in info.stdout and f"Model: scenes-diffusion [{rec.model_hash}]" in info.stdout


def test_same_seed_same_image_whatever_n(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert kaiga("generate", "a blue boat", "--seed", "3", "--steps", "3", "--out", str(a), "--upscale", "1").returncode == 0
    assert kaiga("generate", "a blue boat", "--seed", "2", "--n", "3", "--steps", "3", "--out", str(b),
                 "--upscale", "1").returncode == 0
    one = Image.open(next(a.glob("0000000003-*.png")))
    same = Image.open(next(b.glob("0000000003-*.png")))
    diff = max(abs(x - y) for p, q in zip(one.getdata(), same.getdata()) for x, y in zip(p, q))
    assert diff <= 1


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "steps: must be between 1 and 150 (got 0)"),
    (["--n", "99"], "n: must be between 1 and 16 (got 99)"),
    (["--guidance", "31"], "guidance: must be between 0.0 and 30.0"),
    (["--width", "60"], "width: must be a multiple of 8 (got 60)"),
    (["--width", "72"], "width: must be a multiple of 16 for this model (got 72)"),
    (["--sampler", "plms"], "sampler: must be one of"),
    (["--sampler", "lcm"], "sampler: this model supports"),
    (["--model", "no-such-model"], "model 'no-such-model' not found"),
])
def test_bad_input_is_one_line_exit_2_no_traceback(tmp_path, args, message):
    r = kaiga("generate", "a red car", "--out", str(tmp_path), *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("prompt, message", [("", "prompt: must not be empty"), ("x" * 1001, "prompt: at most 1000")])
def test_empty_or_long_prompt(tmp_path, prompt, message):
    r = kaiga("generate", prompt, "--out", str(tmp_path))
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_unknown_words_are_named_in_a_warning(tmp_path):
    r = kaiga("generate", "a red zebra on a skateboard", "--steps", "2", "--out", str(tmp_path))
    assert r.returncode == 0
    assert "warning" in r.stderr and "zebra" in r.stderr and "skateboard" in r.stderr


def test_pickle_model_is_refused(tmp_path):
    import torch

    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    r = kaiga("generate", "a car", "--model", str(ckpt), "--out", str(tmp_path))
    assert r.returncode == 2 and "pickle" in r.stderr and "Traceback" not in r.stderr


def test_models_lists_the_bundled_model():
    r = kaiga("models")
    assert r.returncode == 0 and "scenes-diffusion" in r.stdout and "bundled" in r.stdout


def test_data_scenes(tmp_path):
    r = kaiga("data", "scenes", "--n", "6", "--out", str(tmp_path / "d"), "--seed", "1")
    assert r.returncode == 0 and "images/s" in r.stdout
    assert len((tmp_path / "d" / "metadata.jsonl").read_text().splitlines()) == 6
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["count"] == 6


def test_help_teaches():
    r = kaiga("generate", "--help")
    assert r.returncode == 0 and "--seed" in r.stdout and "--sampler" in r.stdout


def test_generate_with_a_single_file_checkpoint_and_a_diffusers_folder(tmp_path, tiny_model_dir):
    from kaiga.families.diffusion.model import LatentDiffusion
    from kaiga.families.diffusion.single_file import save_single_file

    single = save_single_file(LatentDiffusion.load(tiny_model_dir), tmp_path / "tiny.safetensors")
    for model in (single, tiny_model_dir):
        r = kaiga("generate", "a red car", "--model", str(model), "--steps", "2", "--out", str(tmp_path / "o"))
        assert r.returncode == 0, r.stderr
    records = [read_metadata(p).record for p in (tmp_path / "o").glob("*.png")]
    assert {r.model for r in records} <= {"tiny", "tiny-diffusion"} and records


def test_styles_lists_the_library_and_imports_a_users_file(tmp_path):
    csv = tmp_path / "styles.csv"
    csv.write_text("name,prompt,negative_prompt\nCine,cinematic still of {prompt},cartoon\n")
    r = kaiga("styles", "--import", str(csv))
    assert r.returncode == 0 and "imported 1 styles" in r.stdout
    listed = kaiga("styles", "--json")
    styles = {s["name"]: s for s in json.loads(listed.stdout)["styles"]}
    assert styles["Cine"]["negative"] == "cartoon" and "watercolor" in styles
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    r = kaiga("styles", "--import", str(bad))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "not valid JSON" in r.stderr
    r = kaiga("generate", "a red car", "--style", "neon:x", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "at character 6" in r.stderr and not (tmp_path / "o").exists()


def test_prompt_syntax_from_the_command_line(tmp_path):
    wildcards = tmp_path / "home" / "wildcards"
    wildcards.mkdir(parents=True)
    (wildcards / "vehicle.txt").write_text("car\ntruck\n")
    env_home = {"KAIGA_HOME": str(tmp_path / "home")}
    run = lambda *a: subprocess.run([sys.executable, "-m", "kaiga.cli", *a], capture_output=True, text=True,  # noqa: E731
                                    timeout=300, env={**os.environ, **env_home})
    listed = json.loads(run("wildcards", "--json").stdout)
    assert listed["vehicle"]["lines"] == ["car", "truck"] and "red" in listed["colour"]["lines"]
    r = run("generate", "a {red|blue} __vehicle__ AND snow :0.5", "--seed", "1", "--steps", "2", "--out",
            str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert "2 prompts × n 1 = 2 images" in r.stderr
    records = [read_metadata(p).record for p in r.stdout.split()]
    assert [rec.prompt.split()[1] for rec in records] == ["red", "blue"]
    assert all(rec.prompt.endswith(" AND snow :0.5") for rec in records)
    r = run("generate", "a [red:blue:soon] car", "--out", str(tmp_path / "bad"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "at character 13" in r.stderr
    assert not (tmp_path / "bad").exists()
