"""The prior: a transformers GPT-2 over one shared vocabulary of caption words and image codes.

Sequence layout (DALL-E, Ramesh et al., 2021, §2.2), positions left to right:

    [caption tokens, padded to text_length] [<boi>] [code_0 ... code_63]   (codes row-major)

Ids: caption words keep the text tokenizer's ids 0..V_text-1; image code c is V_text + c; <boi> is
the last id. Padding uses the tokenizer's <pad> id at every padded position and is attended to
like any token, so the padded caption looks the same in training and sampling (DALL-E learned one
pad token per position for the same reason).

The token loop is written here rather than calling `generate`: it restricts every draw to image
ids, and draws row i from its own seeded `torch.Generator`, so an image depends on its seed only,
not on the batch it was drawn in. Temperature / top-k / top-p are transformers' logits warpers;
past keys and values are kept in a transformers `DynamicCache` (passed as `cache=`, the name
transformers 5 uses).

Example:
    >>> import torch
    >>> from kaiga.families.transformer.config import GPTConfig
    >>> v = Vocabulary(text=10, codes=16)
    >>> gpt = build_gpt(GPTConfig(n_layer=1, n_embd=16, n_head=2), v, positions=20)
    >>> prefix = v.prefix(torch.zeros(2, 3, dtype=torch.long))
    >>> codes = sample_codes(gpt, v, prefix, [torch.Generator().manual_seed(s) for s in (1, 2)], n_tokens=4,
    ...                      warpers=image_warpers(1.0, 0, 1.0))
    >>> codes.shape, bool((codes >= 0).all() and (codes < 16).all())
    (torch.Size([2, 4]), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from transformers import (DynamicCache, GPT2Config, GPT2LMHeadModel, LogitsProcessorList, TemperatureLogitsWarper,
                          TopKLogitsWarper, TopPLogitsWarper)

from kaiga.families.transformer.config import GPTConfig
from kaiga.text.tokenizer import BOS_ID, EOS_ID, PAD_ID


@dataclass(frozen=True)
class Vocabulary:
    """The shared id space: `text` caption ids, then `codes` image ids, then <boi>."""

    text: int
    codes: int

    @property
    def first_code(self) -> int:
        return self.text

    @property
    def boi(self) -> int:
        return self.text + self.codes

    @property
    def size(self) -> int:
        return self.text + self.codes + 1

    def prefix(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Caption ids [N, T] -> the prompt of the prior [N, T + 1] (caption, <boi>)."""
        boi = torch.full((len(input_ids), 1), self.boi, dtype=torch.long, device=input_ids.device)
        return torch.cat([input_ids, boi], dim=1)


def build_gpt(c: GPTConfig, vocab: Vocabulary, positions: int) -> GPT2LMHeadModel:
    return GPT2LMHeadModel(GPT2Config(
        vocab_size=vocab.size,
        n_positions=positions,
        n_embd=c.n_embd,
        n_layer=c.n_layer,
        n_head=c.n_head,
        resid_pdrop=c.dropout,
        embd_pdrop=c.dropout,
        attn_pdrop=c.dropout,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        # No pad_token_id: padded captions are meant to be read as they are (see the module docstring).
        tie_word_embeddings=False,  # safetensors refuses tensors that share memory; the head costs V·D more
    ))


def prior_loss(gpt: GPT2LMHeadModel, vocab: Vocabulary, input_ids: torch.Tensor, codes: torch.Tensor,
               text_weight: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Next-token cross-entropy: on the image codes, plus `text_weight` × on the caption's words.

    input_ids [N, T] caption ids, codes [N, L] codebook indices.
    """
    seq = torch.cat([vocab.prefix(input_ids), codes + vocab.first_code], dim=1)  # [N, T + 1 + L]
    logits = gpt(input_ids=seq[:, :-1]).logits  # [N, T + L, V]: position p predicts token p + 1
    t = input_ids.shape[1]
    # Position t (<boi>) onwards predicts the codes; only image ids are legal there, as in sampling.
    image_logits = logits[:, t:, vocab.first_code:vocab.boi]  # [N, L, codes]
    image = F.cross_entropy(image_logits.reshape(-1, vocab.codes).float(), codes.reshape(-1))
    logs = {"image_ce": image.item()}
    if not text_weight:
        return image, logs
    targets = seq[:, 1:t].clone()  # the caption's words after <bos>; padding is not a word to predict
    targets[targets == PAD_ID] = -100
    text = F.cross_entropy(logits[:, :t - 1].reshape(-1, vocab.size).float(), targets.reshape(-1), ignore_index=-100)
    logs["text_ce"] = text.item()
    return image + text_weight * text, logs


def image_warpers(temperature: float, top_k: int, top_p: float) -> LogitsProcessorList:
    """transformers' warpers for the family's sampling options; 0 / 1.0 switch top-k / top-p off."""
    warpers = LogitsProcessorList()
    if temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    return warpers


@torch.no_grad()
def sample_codes(gpt: GPT2LMHeadModel, vocab: Vocabulary, prefix: torch.Tensor, generators: list[torch.Generator],
                 n_tokens: int, warpers: LogitsProcessorList, use_cache: bool = True,
                 on_token: Callable[[int], None] | None = None) -> torch.Tensor:
    """Draw `n_tokens` image codes after `prefix` [N, P]; row i from `generators[i]` (CPU). -> [N, n_tokens].

    Every draw is among image ids only: the logits of the codebook slice are warped and softmaxed,
    the rest never enter. `use_cache=False` recomputes the whole sequence each step (for checking).
    """
    assert len(generators) == len(prefix), "one generator per row"
    seq = prefix
    cache = DynamicCache(config=gpt.config) if use_cache else None
    step_input = prefix
    for i in range(n_tokens):
        if use_cache:
            out = gpt(input_ids=step_input, cache=cache, use_cache=True, logits_to_keep=1)
        else:
            out = gpt(input_ids=seq, use_cache=False, logits_to_keep=1)
        logits = out.logits[:, -1, vocab.first_code:vocab.boi].float()  # [N, codes]
        probs = warpers(seq, logits).softmax(-1).cpu()
        drawn = torch.cat([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, generators)])  # [N]
        step_input = (drawn + vocab.first_code).to(seq.device)[:, None]
        seq = torch.cat([seq, step_input], dim=1)
        if on_token is not None:
            on_token(i + 1)
    return seq[:, prefix.shape[1]:] - vocab.first_code
