"""The CLIP text encoder of every family: its configuration, and the pooled state at `<eos>`."""

from __future__ import annotations

import torch

from kaiga.text.encoder import TextConfig, build_text_encoder, pooled_text
from kaiga.text.tokenizer import BOS_ID, EOS_ID, PAD_ID


def encoder(vocab_size: int = 12):
    torch.manual_seed(0)
    return build_text_encoder(TextConfig(hidden_size=16, layers=2, heads=2, max_length=8), vocab_size).eval()


def test_the_config_becomes_clips():
    c = encoder().config
    assert (c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads,
            c.max_position_embeddings) == (12, 16, 64, 2, 2, 8)
    assert (c.pad_token_id, c.bos_token_id, c.eos_token_id) == (PAD_ID, BOS_ID, EOS_ID)


def test_the_pooled_state_is_the_final_state_at_eos():
    enc = encoder()
    ids = torch.tensor([[BOS_ID, 5, 6, EOS_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID],
                        [BOS_ID, 7, 8, 9, 10, EOS_ID, PAD_ID, PAD_ID]])
    with torch.no_grad():
        states = enc(ids).last_hidden_state  # [N, T, D]
        pooled = pooled_text(enc, ids)  # [N, D]
    assert pooled.shape == (2, 16)
    torch.testing.assert_close(pooled, states[torch.arange(2), torch.tensor([3, 5])])


def test_padding_after_eos_does_not_change_the_pooled_state():
    # CLIP's attention is causal: what comes after <eos> cannot reach it
    enc = encoder()
    short = torch.tensor([[BOS_ID, 5, 6, EOS_ID]])
    padded = torch.tensor([[BOS_ID, 5, 6, EOS_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID]])
    with torch.no_grad():
        torch.testing.assert_close(pooled_text(enc, short), pooled_text(enc, padded))


def test_the_words_change_the_pooled_state():
    enc = encoder()
    with torch.no_grad():
        a = pooled_text(enc, torch.tensor([[BOS_ID, 5, 6, EOS_ID]]))
        b = pooled_text(enc, torch.tensor([[BOS_ID, 6, 5, EOS_ID]]))  # same words, other order
    assert (a - b).abs().max() > 1e-3
