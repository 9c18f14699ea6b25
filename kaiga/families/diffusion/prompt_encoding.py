"""Prompts as the UNet's cross-attention states, as AUTOMATIC1111 builds them: weighted and chunked.

- Weights (`(red:1.3)`, `[fog]`, parsed by `kaiga.text.prompt_weights`) scale how far a span moves the
  prompt's states: the prompt is encoded as written and once more with the span's tokens replaced by
  padding (the same positions), and the states are `without + w × (with - without)` over every token.
  So `(snow:0)` is the prompt without snow, 1 as written, 1.6 snow pushed past it; several spans add
  their differences. Why not A1111's emphasis (each weighted token's own state multiplied by w, the mean
  restored): a text encoder's attention spreads a word's meaning into the other tokens' states, so scaling
  only its own barely acts — measured on scenes-diffusion v5, `(snow:w)` read as snow in 1.00 of images
  at every w from 0 to 1.6 (docs/CONTROLS.md). The difference reaches every token the word touched.
- Long prompts: the text encoder reads `max_len` tokens (77 for Stable Diffusion's CLIP, 32 for our
  models), `<bos>` and `<eos>` included. A longer prompt is cut into chunks of `max_len - 2` tokens,
  each framed by `<bos> ... <eos>` and padded, encoded separately and concatenated along the sequence
  axis ([N, k · max_len, D]); cross-attention takes any sequence length. The prompts and the negative
  prompt are padded with empty chunks to the same k, as classifier-free guidance batches them together.
  A tokenizer without `<bos>`/`<eos>` (none that Stable Diffusion or kaiga ships) cannot be chunked:
  its prompt is read as plain text and cut, with a warning naming how many tokens were dropped.
- A batch of prompts that are all plain and fit is encoded exactly as before weights and chunks existed
  (`model.tokenize`, then `model.encode_text`), so the shipped models' images do not change.

Example:
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> m = LatentDiffusion.create(tiny_config())
    >>> cond, uncond = text_states(m, ["a red car"], "")
    >>> cond.shape, uncond.shape
    (torch.Size([1, 32, 32]), torch.Size([1, 32, 32]))
    >>> cond, uncond = text_states(m, ["a (red:1.3) car, " * 8], "fog")  # 40 words: 2 chunks of 30
    >>> cond.shape, uncond.shape
    (torch.Size([1, 64, 32]), torch.Size([1, 64, 32]))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from kaiga.text.prompt_weights import is_plain, parse_weights, plain_text

log = logging.getLogger("kaiga")


@dataclass(frozen=True)
class WeightedTokens:
    """A prompt's token ids without `<bos>`/`<eos>`, and the weight of each."""

    ids: list[int]
    weights: list[float]


def max_tokens(model) -> int:
    """Tokens the text encoder reads at once, `<bos>` and `<eos>` included (the model's `text_length`)."""
    return model.text_length


def weighted_tokens(tokenizer, prompt: str) -> WeightedTokens:
    """Each span of the prompt tokenized on its own (as A1111 does), its tokens given the span's weight."""
    ids, weights = [], []
    for span in parse_weights(prompt):
        span_ids = tokenizer(span.text, add_special_tokens=False)["input_ids"] if span.text else []
        ids += span_ids
        weights += [span.weight] * len(span_ids)
    return WeightedTokens(ids, weights)


def _can_chunk(tokenizer) -> bool:
    return tokenizer.bos_token_id is not None and tokenizer.eos_token_id is not None


def chunk_count(tokens: WeightedTokens, max_len: int) -> int:
    """Chunks of `max_len - 2` tokens the prompt needs (at least one: an empty prompt is one empty chunk)."""
    body = max_len - 2
    return max(1, -(-len(tokens.ids) // body))


def framed_chunks(ids: list[int], chunks: int, max_len: int, bos: int, eos: int, pad: int) -> torch.Tensor:
    """Token ids [chunks, max_len]: `<bos> chunk <eos> <pad>...` each, the chunks after the prompt's end empty."""
    body = max_len - 2
    framed = torch.full((chunks, max_len), pad, dtype=torch.long)
    for c in range(chunks):
        part = ids[c * body : (c + 1) * body]
        framed[c, 0], framed[c, 1 : len(part) + 1], framed[c, len(part) + 1] = bos, torch.tensor(part, dtype=torch.long), eos
    return framed


def weighted_spans(tokens: WeightedTokens) -> list[tuple[int, int, float]]:
    """(start, end, weight) of each run of tokens that weigh the same and not 1.

    >>> weighted_spans(WeightedTokens([5, 6, 7, 8], [1.0, 1.3, 1.3, 0.5]))
    [(1, 3, 1.3), (3, 4, 0.5)]
    """
    spans, start = [], 0
    for i in range(1, len(tokens.weights) + 1):
        if i == len(tokens.weights) or tokens.weights[i] != tokens.weights[start]:
            if tokens.weights[start] != 1:
                spans.append((start, i, tokens.weights[start]))
            start = i
    return spans


def _plain_truncated(model, prompts: list[str], negative: str, tokens: list[WeightedTokens]):
    """A tokenizer without `<bos>`/`<eos>` cannot be chunked nor weighted: the plain text, cut, with a warning."""
    body = max_tokens(model) - 2
    if (dropped := max(len(t.ids) for t in tokens) - body) > 0:
        log.warning("prompt: %d tokens dropped; the text encoder reads %d, and this tokenizer has no "
                    "<bos>/<eos> to encode a prompt in chunks", dropped, body)
    prompts, negative = [plain_text(p) for p in prompts], plain_text(negative)
    return model.encode_text(model.tokenize(prompts)), model.encode_text(model.tokenize([negative]))


def encode_tokens(model, tokens: list[WeightedTokens], chunks: int) -> torch.Tensor:
    """Text states [N, chunks · max_len, D] of N tokenized prompts, each in `chunks` framed chunks, each weighted
    span's difference scaled by its weight (one batch: the prompts, then each prompt without each span)."""
    tokenizer, max_len = model.tokenizer, max_tokens(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    spans = [(i, start, end, w) for i, t in enumerate(tokens) for start, end, w in weighted_spans(t)]
    rows = [t.ids for t in tokens] + [tokens[i].ids[:start] + [pad] * (end - start) + tokens[i].ids[end:]
                                      for i, start, end, _ in spans]
    ids = torch.cat([framed_chunks(r, chunks, max_len, tokenizer.bos_token_id, tokenizer.eos_token_id, pad)
                     for r in rows])  # [(N + spans) · chunks, max_len]
    states = model.encode_text(ids)
    states = states.reshape(len(rows), chunks * max_len, states.shape[-1])
    weighted = states[: len(tokens)].clone()
    for k, (i, _, _, w) in enumerate(spans):
        weighted[i] += (w - 1) * (states[i] - states[len(tokens) + k])
    return weighted


def text_states(model, prompts: list[str], negative: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Text states of the prompts [N, T, D] and of the negative prompt [1, T, D], the same T for both."""
    max_len = max_tokens(model)
    tokens = [weighted_tokens(model.tokenizer, p) for p in [*prompts, negative]]
    chunks = max(chunk_count(t, max_len) for t in tokens)
    if chunks == 1 and all(is_plain(p) for p in [*prompts, negative]):  # exactly as before weights and chunks
        return model.encode_text(model.tokenize(prompts)), model.encode_text(model.tokenize([negative]))
    if not _can_chunk(model.tokenizer):
        return _plain_truncated(model, prompts, negative, tokens)
    if chunks > 1:
        log.info("prompt: encoded in %d chunks of %d tokens (the text encoder reads %d at once)",
                 chunks, max_len - 2, max_len)
    states = encode_tokens(model, tokens, chunks)
    return states[:-1], states[-1:]
