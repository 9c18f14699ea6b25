"""Textual inversion (kaiga finetune --method textual-inversion) on a tiny model with the real pretrained text
encoder: a few-KB file in AUTOMATIC1111's layout, used by any prompt holding its word and named in the record,
the model's other prompts untouched; a known word, a closed-vocabulary model and a foreign file refused."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from kaiga.families.diffusion.model import LatentDiffusion, tiny_v6_config
from kaiga.finetune.embedding import EmbeddingError, add_word, embedding_info, read_embedding
from kaiga.studio import Studio


@pytest.fixture(scope="module")
def v6_dir(tmp_path_factory):
    torch.manual_seed(0)
    return LatentDiffusion.create(tiny_v6_config()).save(tmp_path_factory.mktemp("v6") / "tiny-v6")


def _finetune(home, *args):
    env = {**os.environ, "KAIGA_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "kaiga", "finetune", "--method", "textual-inversion", *args],
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(v6_dir, tiny_scenes, tmp_path_factory):
    """A word learned by the CLI as a user runs it, saved by name in $KAIGA_HOME/embeddings."""
    home = tmp_path_factory.mktemp("home")
    r = _finetune(home, "--data", str(tiny_scenes), "--model", str(v6_dir), "--out", "sks-car", "--init-word", "car",
                  "--steps", "6", "--batch-size", "4", "--lr", "0.05", "--sample-every", "0")
    assert r.returncode == 0, r.stderr
    assert "write sks-car in a prompt" in " ".join(r.stdout.split())  # rich wraps the line
    return home


def _pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im.image, np.int16) for im in images])


def test_the_file_is_a_few_kb_in_a1111s_layout_and_says_where_it_came_from(trained, v6_dir):
    path = trained / "embeddings" / "sks-car.safetensors"
    assert list(load_file(str(path))) == ["emb_params"] and read_embedding(path).shape == (1, 384)
    assert path.stat().st_size < 16 * 1024
    info = embedding_info(path)
    assert (info["method"], info["trigger"], info["init_word"]) == ("textual-inversion", "sks-car", "car")
    assert info["base"]["model"] == v6_dir.name and info["data"]["items"] == 16


def test_it_moved_from_the_word_it_started_at(trained, v6_dir):
    model = LatentDiffusion.load(v6_dir)
    ids = model.tokenizer("car", add_special_tokens=False)["input_ids"]
    start = model.text_encoder.model.get_input_embeddings().weight[ids].mean(0)
    assert (read_embedding(trained / "embeddings" / "sks-car.safetensors")[0] - start).abs().max() > 1e-3


def test_a_prompt_with_the_word_uses_it_and_says_so(trained, v6_dir, monkeypatch):
    monkeypatch.setenv("KAIGA_HOME", str(trained))
    studio = Studio(watermark=False)
    req = {"model": str(v6_dir), "seed": 4, "steps": 3}
    plain = _pixels(studio.generate("a red car", **req))
    used = studio.generate("a red sks-car", **req)
    [named] = used[0].record.extra["embeddings"]
    assert named["name"] == "sks-car" and len(named["hash"]) == 10
    assert np.abs(_pixels(used) - plain).max() > 0
    again = studio.generate("a red car", **req)  # the taught word changes nothing else
    assert "embeddings" not in again[0].record.extra
    np.testing.assert_array_equal(_pixels(again), plain)


def test_the_added_word_leaves_every_other_prompts_states_as_they_were(v6_dir):
    model = LatentDiffusion.load(v6_dir)
    ids = model.tokenize(["a red car in the snow"])
    before = model.encode_text(ids)
    add_word(model, "sks-thing", torch.randn(1, 384))
    after_ids = model.tokenize(["a red car in the snow", "a sks-thing in the snow"])
    assert torch.equal(after_ids[0], ids[0]) and int(after_ids[1].max()) == model.text_encoder.vocab_size
    torch.testing.assert_close(model.encode_text(after_ids)[:1], before, atol=1e-5, rtol=0)


def test_a_word_the_encoder_knows_cannot_be_taught(v6_dir):
    model = LatentDiffusion.load(v6_dir)
    with pytest.raises(EmbeddingError, match="'dog' is a word the text encoder knows"):
        add_word(model, "dog", torch.zeros(1, 384))
    with pytest.raises(EmbeddingError, match="768 wide, made for another text encoder; this model's is 384"):
        add_word(model, "sks-clip", torch.zeros(1, 768))


def test_an_sdxl_file_is_refused_naming_its_keys(tmp_path):
    path = tmp_path / "xl.safetensors"
    save_file({"clip_l": torch.zeros(1, 768), "clip_g": torch.zeros(1, 1280)}, str(path))
    with pytest.raises(EmbeddingError, match="holds clip_g, clip_l"):
        read_embedding(path)


def test_a_closed_vocabulary_model_and_a_bad_name_are_one_line(tiny_model_dir, tiny_scenes, tmp_path):
    r = _finetune(tmp_path, "--data", str(tiny_scenes), "--model", str(tiny_model_dir), "--out", "sks-car",
                  "--steps", "1")
    assert r.returncode == 2 and "closed vocabulary" in r.stderr and "Traceback" not in r.stderr
    r = _finetune(tmp_path, "--data", str(tiny_scenes), "--model", str(tiny_model_dir), "--out", "My Car")
    assert r.returncode == 2 and "--out:" in r.stderr and "Traceback" not in r.stderr
