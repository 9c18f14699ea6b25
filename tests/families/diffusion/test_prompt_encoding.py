"""Prompt weights and long-prompt chunks in the diffusion family's text states (A1111's way).

Chunks are tested on a tiny CLIP BPE tokenizer saved and loaded in the real format (vocab.json +
merges.txt, as in a Stable Diffusion folder), with a text encoder that reads 16 tokens at once.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
from transformers import CLIPTokenizer

from kaiga.families.diffusion.config import TextConfig, build_text_encoder
from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
from kaiga.families.diffusion.prompt_encoding import (
    WeightedTokens,
    framed_chunks,
    max_tokens,
    text_states,
    weighted_spans,
    weighted_tokens,
)
from kaiga.request import GenerationRequest

MAX_LEN = 16  # the tiny CLIP encoder's positions: chunks of 14 tokens


def _clip_tokenizer(folder) -> CLIPTokenizer:
    """CLIP's byte-level BPE over the letters a-z, with merges for "red" and "car" (one token each)."""
    letters = "abcdefghijklmnopqrstuvwxyz,"
    tokens = [*letters, *(c + "</w>" for c in letters), "re", "red</w>", "ca", "car</w>",
              "<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\nr e\nre d</w>\nc a\nca r</w>\n")
    return CLIPTokenizer.from_pretrained(folder, model_max_length=MAX_LEN)


@pytest.fixture(scope="module")
def clip_model(tmp_path_factory):
    """A tiny diffusion model with a CLIP tokenizer, saved as a diffusers folder and loaded back."""
    folder = tmp_path_factory.mktemp("clip-tokenizer")
    tokenizer = _clip_tokenizer(folder)
    torch.manual_seed(0)
    m = LatentDiffusion.create(tiny_config())
    m.tokenizer = tokenizer
    m.text_encoder = build_text_encoder(TextConfig(hidden_size=32, layers=1, heads=2, max_length=MAX_LEN),
                                        vocab_size=len(tokenizer))
    return LatentDiffusion.load(m.save(tmp_path_factory.mktemp("models") / "tiny-clip"))


@pytest.fixture(scope="module")
def word_model():
    torch.manual_seed(0)
    return LatentDiffusion.create(tiny_config()).eval()


def _reference(model, prompts):
    """The states before weights and chunks existed: one encoder pass over the padded, truncated ids."""
    return model.encode_text(model.tokenize(prompts))


def test_the_loaded_tokenizer_is_clip_bpe(clip_model):
    tok = clip_model.tokenizer
    assert tok.convert_ids_to_tokens(tok("red car")["input_ids"]) == [
        "<|startoftext|>", "red</w>", "car</w>", "<|endoftext|>"]
    assert max_tokens(clip_model) == MAX_LEN


@pytest.mark.parametrize("model_name", ["word_model", "clip_model"])
def test_a_plain_prompt_that_fits_gives_the_same_states_as_before(model_name, request):
    model = request.getfixturevalue(model_name)
    with torch.no_grad():
        cond, uncond = text_states(model, ["red car, red car", "car"], "red")
        assert torch.equal(cond, _reference(model, ["red car, red car", "car"]))
        assert torch.equal(uncond, _reference(model, ["red"]))
        # weights of 1 go the chunked way and still frame and pad exactly as the tokenizer does
        assert torch.equal(text_states(model, ["(red:1) car"], "")[0], _reference(model, ["red car"]))


@torch.no_grad()
def test_a_long_prompt_is_encoded_in_chunks_of_max_len_minus_2(clip_model):
    words = ["red", "car"] * 10  # 20 tokens: chunks of 14 and 6
    cond, uncond = text_states(clip_model, [" ".join(words)], "car")
    assert cond.shape == uncond.shape == (1, 2 * MAX_LEN, 32)
    # each chunk is encoded on its own, framed by <bos> ... <eos>
    assert torch.equal(cond[:, :MAX_LEN], _reference(clip_model, [" ".join(words[:14])]))
    assert torch.equal(cond[:, MAX_LEN:], _reference(clip_model, [" ".join(words[14:])]))
    # the negative prompt is padded with an empty chunk to the same length
    assert torch.equal(uncond[:, :MAX_LEN], _reference(clip_model, ["car"]))
    assert torch.equal(uncond[:, MAX_LEN:], _reference(clip_model, [""]))
    # the words past the encoder's length count: they used to be cut without a word
    other = text_states(clip_model, [" ".join([*words[:-1], "red"])], "car")[0]
    assert torch.equal(other[:, :MAX_LEN], cond[:, :MAX_LEN]) and not torch.equal(other, cond)


@torch.no_grad()
def test_prompts_of_a_batch_share_the_longest_ones_chunks(word_model):
    long = "a red car in the snow at night, " * 5  # 45 words: 2 chunks of 30
    cond, uncond = text_states(word_model, [long, "a red car"], "")
    assert cond.shape[:2] == (2, 64) and uncond.shape[:2] == (1, 64)
    assert torch.equal(cond[1:, :32], _reference(word_model, ["a red car"]))


@torch.no_grad()
def test_a_long_prompt_makes_an_image(word_model):
    request = GenerationRequest(prompt="a (red:1.2) car in the snow at night, " * 6, steps=1, guidance=3.0)
    [image] = word_model.sample(request, seeds=[1])
    assert image.size == (64, 64)


@torch.no_grad()
def test_a_weight_scales_the_difference_the_span_makes(word_model):
    """(red:w) is the prompt without "red" (its tokens padded) plus w times what "red" adds, over every token."""
    at = {w: text_states(word_model, [f"a (red:{w}) car"], "")[0] for w in (0, 1, 1.3, 2)}
    assert not torch.equal(at[0], at[1])
    assert torch.allclose(at[1.3] - at[1], 0.3 * (at[1] - at[0]), atol=1e-5)
    assert torch.allclose(at[2], 2 * at[1] - at[0], atol=1e-5)
    tok = word_model.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    assert pad is not None
    red = weighted_tokens(tok, "a (red:0) car")
    without = framed_chunks([pad if w == 0 else i for i, w in zip(red.ids, red.weights)], 1, max_tokens(word_model),
                            tok.bos_token_id, tok.eos_token_id, pad)
    assert torch.allclose(at[0], word_model.encode_text(without), atol=1e-6)
    # two spans add their differences; the plain words between them are as written
    both = text_states(word_model, ["a (red:2) car in the (snow:0)"], "")[0]
    one = text_states(word_model, ["a (red:2) car in the (snow:1)"], "")[0]
    assert not torch.allclose(both, one)


def test_weighted_spans_are_runs_of_one_weight():
    assert weighted_spans(WeightedTokens([1, 2, 3], [1.0, 1.0, 1.0])) == []
    assert weighted_spans(WeightedTokens([1, 2, 3, 4], [0.5, 0.5, 1.0, 2.0])) == [(0, 2, 0.5), (3, 4, 2.0)]


@torch.no_grad()
def test_without_bos_and_eos_a_long_prompt_is_cut_with_a_warning(clip_model, caplog, monkeypatch):
    class WithoutBos:  # a tokenizer that frames nothing with <bos> (T5's, say)
        bos_token_id = None

        def __init__(self, tokenizer):
            self.tokenizer = tokenizer

        def __getattr__(self, name):
            return getattr(self.tokenizer, name)

        def __call__(self, *args, **kwargs):
            return self.tokenizer(*args, **kwargs)

    monkeypatch.setattr(clip_model, "tokenizer", WithoutBos(clip_model.tokenizer))
    with caplog.at_level(logging.WARNING, logger="kaiga"):
        cond, _ = text_states(clip_model, ["red car " * 10], "")
    assert cond.shape[1] == MAX_LEN
    assert "prompt: 6 tokens dropped" in caplog.text
