"""The `transformer` family: DALL-E's recipe (Ramesh et al., 2021) at 64×64 pixels.

1. A VQ tokenizer (`vq.py`, diffusers `VQModel`) turns an image into 8×8 = 64 codebook indices.
2. A GPT-2 prior (`prior.py`, transformers) models [caption tokens; <boi>; 64 codes] left to right.
3. Generation draws the 64 codes one by one after the caption (temperature / top-k / top-p),
   decodes them with the VQ decoder, and, with `candidates` > 1, keeps the draw that a small
   contrastive model (`rerank.py`) finds closest to the prompt.

Training runs in stages on one model (`Stage`): the tokenizer first, then the prior on the frozen
tokenizer's codes, and the scorer on real image / caption pairs (any time). `model.stage` picks
what `loss` computes and `param_groups` hands to the optimiser; the others get no gradient.

Example:
    >>> from kaiga.request import GenerationRequest
    >>> m = DalleTransformer.create(TransformerConfig.tiny())
    >>> [im] = m.sample(GenerationRequest(prompt="a red car", top_k=4), seeds=[3])
    >>> im.size
    (64, 64)
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from kaiga.families.base import ImageGenerator, prompt_batches
from kaiga.families.transformer.config import Stage, TransformerConfig
from kaiga.families.transformer.prior import Vocabulary, build_gpt, image_warpers, prior_loss, sample_codes
from kaiga.families.transformer.rerank import ContrastiveScorer
from kaiga.families.transformer.vq import (build_vq, decode_codes, encode_codes, encode_latents, latents_to_codes,
                                           restart_dead_codes)
from kaiga.images import to_pil
from kaiga.prompt_syntax import is_composed, main_text
from kaiga.request import GenerationRequest
from kaiga.styles.mix import styled_prompts

log = logging.getLogger("kaiga")
EXPLAIN_EVERY = 8  # image tokens between two frames of `explain`


def candidate_seed(seed: int, j: int) -> int:
    """Seed of candidate j of the image with `seed`: the seed itself for j = 0, so one candidate is
    the plain draw; otherwise a fixed odd-multiplier mix (a different stream per candidate)."""
    return seed if j == 0 else (seed + j * 0x9E3779B97F4A7C15) % 2**64


def main_texts(prompts: list[str]) -> list[str]:
    """Each prompt as the one text this family reads: it conditions on the prompt's tokens, not on vectors to
    sum, so a composed prompt (AND, ::, [from:to:when]) gives its heaviest part as it reads longest (said in the
    log)."""
    out = [main_text(p) if is_composed(p) else p for p in prompts]
    for before, after in dict.fromkeys(zip(prompts, out)):
        if before != after:
            log.warning("prompt: a transformer model reads one text, not sub-prompts or edits; of %r it reads %r",
                        before, after)
    return out


class DalleTransformer(ImageGenerator):
    family = "transformer"
    config_class = TransformerConfig
    request_options = ("temperature", "top_k", "top_p", "candidates")

    def __init__(self, config: TransformerConfig, tokenizer, info: dict | None = None):
        size = config.image_size
        super().__init__(config, tokenizer, {"native_size": size, "max_size": size, **(info or {})})
        self.vocab = Vocabulary(text=len(tokenizer), codes=config.vq.codebook_size)
        self.vq = build_vq(config.vq)
        # Running share of positions per code, for the dead-code restart (saved: harmless, resumable).
        self.register_buffer("code_usage", torch.full((config.vq.codebook_size,), 1.0 / config.vq.codebook_size))
        self.gpt = build_gpt(config.gpt, self.vocab, positions=config.sequence_length)
        self.scorer = ContrastiveScorer(config.scorer, len(tokenizer), config.text_length, size)
        self.set_stage(Stage.TOKENIZER)

    @classmethod
    def max_text_length(cls, config: TransformerConfig) -> int:
        return config.text_length

    # --- training stages ------------------------------------------------------------------------
    def stage_module(self, stage: Stage) -> torch.nn.Module:
        return {Stage.TOKENIZER: self.vq, Stage.PRIOR: self.gpt, Stage.SCORER: self.scorer}[stage]

    def set_stage(self, stage: Stage | str) -> "DalleTransformer":
        """Train `stage` from now on: its parameters require gradients, the others are frozen."""
        self.stage = Stage(stage)
        self.requires_grad_(False)
        self.stage_module(self.stage).requires_grad_(True)
        return self

    def param_groups(self, cfg) -> list[dict]:
        """The optimiser sees the stage's parameters only (FamilyTask asks for this)."""
        return [{"params": list(self.stage_module(self.stage).parameters()), "lr": cfg.lr}]

    def loss(self, batch):
        x, ids = batch["pixels"], batch["input_ids"].to(self.device)  # [N, 3, H, W], [N, T]
        assert x.shape[1:] == (3, self.config.image_size, self.config.image_size), f"pixels {tuple(x.shape)}"
        if self.stage is Stage.TOKENIZER:
            return self._tokenizer_loss(x, batch["generator"])
        if self.stage is Stage.PRIOR:
            with torch.no_grad():
                codes = encode_codes(self.vq, x)  # [N, 64]
            return prior_loss(self.gpt, self.vocab, ids, codes, self.config.gpt.text_loss_weight)
        return self.scorer.loss(x, ids)

    def _tokenizer_loss(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        """Reconstruction (mean squared error) + the quantizer's codebook / commitment terms."""
        h = encode_latents(self.vq, x)
        out = self.vq.decode(h)  # quantises, returns the commitment loss (diffusers)
        recon = F.mse_loss(out.sample, x)
        commit = out.commit_loss.mean()
        logs = {"recon": recon.item(), "commit": commit.item()}
        if self.training:
            codes = latents_to_codes(self.vq, h.detach())
            logs["codes_used"] = int(codes.unique().numel())
            if self.config.vq.restart_dead_codes:
                logs["codes_restarted"] = restart_dead_codes(self.vq, self.code_usage, h.detach(), codes, generator)
        return recon + commit, logs

    # --- generation -----------------------------------------------------------------------------
    def _options(self, request: GenerationRequest) -> tuple[float, int, float, int]:
        d = self.config.sampling
        pick = lambda v, default: default if v is None else v  # noqa: E731
        return (pick(request.temperature, d.temperature), pick(request.top_k, d.top_k),
                pick(request.top_p, d.top_p), pick(request.candidates, d.candidates))

    @torch.no_grad()
    def draw_codes(self, prompts: list[str], seeds: list[int], temperature: float = 1.0, top_k: int = 0,
                   top_p: float = 1.0, use_cache: bool = True, on_token=None) -> torch.Tensor:
        """Image codes [N, 64] for each (prompt, seed), each row from its own seeded generator."""
        prefix = self.vocab.prefix(self.tokenize(prompts).to(self.device))
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        return sample_codes(self.gpt, self.vocab, prefix, gens, self.config.image_tokens,
                            image_warpers(temperature, top_k, top_p), use_cache, on_token)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [N, 64] -> pixels [N, 3, 64, 64] in [-1, 1]."""
        return decode_codes(self.vq, codes.to(self.device)).clamp(-1, 1)

    @torch.no_grad()
    def sample(self, request: GenerationRequest, seeds, batch_size=16, on_step=None, prompts=None):
        self.check_request(request)
        temperature, top_k, top_p, n_cand = self._options(request)
        if request.chaos:  # kaiga/families/chaos.py: a hotter sampling, up to ×1.5 at chaos 100
            from kaiga.families.chaos import TEMPERATURE_RISE

            temperature *= 1 + TEMPERATURE_RISE * request.chaos / 100
        # Every (image, candidate) is a row of its own; rows are batched regardless of which image
        # they belong to, since a row depends on its prompt and seed only. (One chunk of
        # `prompt_batches` pairs each seed with its prompt and checks there is one per seed.)
        [(_, _, texts)] = prompt_batches(request, seeds, len(seeds), prompts) if seeds else [(0, [], [])]
        texts = styled_prompts(main_texts(texts), request)
        rows = [(p, candidate_seed(s, j)) for s, p in zip(seeds, texts) for j in range(n_cand)]
        total, done = len(rows) * self.config.image_tokens, 0
        pixels, scores = [], []
        for start in range(0, len(rows), batch_size):
            texts, row_seeds = zip(*rows[start:start + batch_size])
            report = None if on_step is None else (lambda i, d=done, n=len(texts): on_step(d + i * n, total))
            x = self.decode(self.draw_codes(list(texts), list(row_seeds), temperature, top_k, top_p, on_token=report))
            done += len(texts) * self.config.image_tokens
            pixels.append(x)
            if n_cand > 1:
                scores.append(self._rerank_scores(x, texts))
        if not rows:
            return []
        x = torch.cat(pixels).view(len(seeds), n_cand, *pixels[0].shape[1:])  # [N, candidates, 3, H, W]
        if n_cand > 1:
            best = torch.cat(scores).view(len(seeds), n_cand).argmax(1)
            x = x[torch.arange(len(seeds)), best.to(x.device)]
        else:
            x = x[:, 0]
        return to_pil(x)

    def _rerank_scores(self, images: torch.Tensor, prompts) -> torch.Tensor:
        """The contrastive reranker's score [N] of each image [N, 3, H, W] for its prompt: the best draw is kept."""
        return self.scorer.similarity(images, self.tokenize(list(prompts)).to(self.device))

    @torch.no_grad()
    def training_grid(self, pixels: torch.Tensor) -> torch.Tensor | None:
        """While the tokenizer trains: real images over their reconstructions through the codes.

        (Samples would show nothing then: the prior is still untrained.) None for the other stages.
        """
        if self.stage is not Stage.TOKENIZER:
            return None
        x = pixels.to(self.device, self.dtype)
        return torch.cat([x, self.decode(encode_codes(self.vq, x))])

    def explain(self, prompt, seed):
        """The image as the prior writes it: frames after 8, 16, ..., 64 tokens, the rest grey.

        With reranking on (the model's default `candidates`), the frames follow the draw the reranker
        keeps, so the last frame is the image `sample` gives for this prompt and seed.
        """
        request = GenerationRequest(prompt=prompt)
        temperature, top_k, top_p, n_cand = self._options(request)
        drawn = self.draw_codes([prompt] * n_cand, [candidate_seed(seed, j) for j in range(n_cand)],
                                temperature, top_k, top_p)  # [candidates, 64]
        codes = drawn[0]
        if n_cand > 1:
            codes = drawn[int(self._rerank_scores(self.decode(drawn), [prompt] * n_cand).argmax())]
        n, side = self.config.image_tokens, self.config.vq.grid(self.config.image_size)
        patch = self.config.image_size // side  # pixels per code
        counts = list(range(EXPLAIN_EVERY, n + 1, EXPLAIN_EVERY))
        partial = codes.repeat(len(counts), 1)  # [F, 64]
        written = torch.arange(n, device=codes.device)[None] < torch.tensor(counts, device=codes.device)[:, None]
        x = self.decode(torch.where(written, partial, torch.zeros_like(partial)))  # unwritten: code 0, then masked
        mask = written.view(-1, 1, side, side).float().repeat_interleave(patch, 2).repeat_interleave(patch, 3)
        frames = to_pil(x * mask.to(x))  # 0 in [-1, 1] is mid grey
        captions = [f"tokens {k}/{n}" for k in counts]
        if n_cand > 1:
            captions[-1] += f", best of {n_cand}"
        return frames, captions
