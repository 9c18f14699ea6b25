"""`kaiga finetune`: LoRA adapters or a textual-inversion word trained on a user's captioned images, on the shared loop.

The base diffusion model is loaded frozen; peft LoRA layers on its UNet's attention projections are all that
trains (kaiga/finetune/lora.py), with the denoiser's own loss over the autoencoder's latents of the images. The
run folder keeps checkpoints (so `--resume` continues), sample grids and the log; the result is one
`.safetensors` file of the adapters (EMA weights), whose metadata names the base model by hash, the rank and
alpha, and the dataset's card (sources, licences and consent, with counts).

`--method textual-inversion` (Gal et al. 2022) learns one new word instead: its input vector alone, started from an
existing word's (`init_word`, say "toy"), with everything else frozen, through the same denoiser loss. Each caption
names the subject by the new word: its first `init_word` becomes the trigger, and a caption without one gets
"a photo of TRIGGER, " in front. The result is a few-KB embedding file (kaiga/finetune/embedding.py).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from kaiga.data.dataset import write_scenes
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> from kaiga.train.loop import LoopConfig
    >>> d = Path(tempfile.mkdtemp())
    >>> base = LatentDiffusion.create(tiny_config()).save(d / "base")
    >>> _ = finetune_lora(base, write_scenes(d / "data", n=4), d / "toy.safetensors", d / "run",
    ...                   LoopConfig(steps=2, batch_size=2, progress=False, sample_every=0), rank=4, alpha=4)
    >>> lora_info(d / "toy.safetensors")["rank"]
    4
"""

from __future__ import annotations

from pathlib import Path

import torch

from kaiga.data.admit import Admission
from kaiga.families.diffusion.model import DiffusionStage, LatentDiffusion
from kaiga.finetune.lora import add_lora, lora_info, lora_layers, save_lora  # noqa: F401 (lora_info: the example)
from kaiga.train.family_task import FamilyTask
from kaiga.train.loop import LoopConfig, train

UNCOND_PROB = 0.1  # as the denoiser's own training: guidance keeps working on the adapted model


class LoraTask(FamilyTask):
    """The denoiser's task with only the LoRA layers training; its export is the adapter file alone."""

    def __init__(self, model: LatentDiffusion, data: Path, out_file: Path, rank: int, alpha: float, base: dict,
                 layout: str, **kwargs):
        super().__init__(model, data, **kwargs)
        self.out_file, self.rank, self.alpha, self.base, self.layout = Path(out_file), rank, alpha, base, layout
        # the grids show the user's own captions (the first images' first captions), not the scenes prompts
        self.grid_prompts = [ex.captions[0] for ex in self.admission.examples[:8] if ex.captions]

    def sample_grid(self, module, step):
        from kaiga.images import pil_grid
        from kaiga.request import GenerationRequest

        if not self.grid_prompts:
            return super().sample_grid(module, step)
        seeds = list(range(len(self.grid_prompts)))
        return pil_grid(module.sample(GenerationRequest(prompt="grid"), seeds, prompts=self.grid_prompts))

    def export(self, state_dict, out):
        self.model.load_state_dict(state_dict)  # the EMA weights
        from kaiga.train.loop import training_record

        record = training_record(None, out, "lora", self.data.name)
        save_lora(lora_layers(self.model.unet), self.out_file, rank=self.rank, alpha=self.alpha, layout=self.layout,
                  metadata={"method": "lora", "base": self.base, "data": self.admission.data_block(),
                            "training": record})


def finetune_lora(base: Path, data: Path, out_file: Path, run_dir: Path, loop: LoopConfig, *, rank: int = 8,
                  alpha: float = 8.0, layout: str = "diffusers", resume: bool = False,
                  admission: Admission | None = None) -> dict:
    """Train a LoRA of the diffusion model folder `base` on dataset `data`; writes `out_file` at the end."""
    from kaiga.model_files import model_hash, resolve_model

    ref = resolve_model(str(base))
    model = LatentDiffusion.load(base, dtype=torch.float32)
    if torch.cuda.is_available():
        model.to("cuda")
    model.set_stage(DiffusionStage.DENOISER)
    model.text_encoder.requires_grad_(False)
    add_lora(model.unet, rank, alpha)
    task = LoraTask(model, data, out_file, rank, alpha, {"model": ref.name, "model_hash": model_hash(ref)}, layout,
                    batch_size=loop.batch_size, uncond_prob=UNCOND_PROB, cache_dir=Path(run_dir) / "cache",
                    admission=admission)
    return train(task, loop, run_dir, resume=resume)


def trigger_captions(captions: tuple[str, ...], trigger: str, init_word: str) -> tuple[str, ...]:
    """Each caption naming the subject by `trigger`: its first `init_word` replaced, else the trigger put first.

    >>> trigger_captions(("a toy on a table", "on the beach"), "sks-toy", "toy")
    ('a sks-toy on a table', 'a photo of sks-toy, on the beach')
    """
    import re

    word = re.compile(rf"\b{re.escape(init_word)}\b", re.IGNORECASE)
    return tuple(word.sub(trigger, c, count=1) if word.search(c) else f"a photo of {trigger}, {c}" for c in captions)


class TextualInversionTask(LoraTask):
    """The denoiser's task with one new word's vector training; its export is the embedding file alone."""

    def __init__(self, model, data, out_file, trigger: str, init_word: str, base: dict, **kwargs):
        self.trigger, self.init_word = trigger, init_word
        super().__init__(model, data, out_file, rank=0, alpha=0.0, base=base, layout="a1111", **kwargs)

    def export(self, state_dict, out):
        from kaiga.finetune.embedding import save_embedding
        from kaiga.train.loop import training_record

        self.model.load_state_dict(state_dict)  # the EMA weights
        record = training_record(None, out, "textual-inversion", self.data.name)
        save_embedding(self.model.text_encoder.added[-1:], self.out_file,
                       {"init_word": self.init_word, "base": self.base, "data": self.admission.data_block(),
                        "training": record})


def init_vector(model, init_word: str) -> torch.Tensor:
    """[1, D]: the mean input vector of `init_word`'s tokens, where the new word starts."""
    ids = model.tokenizer(init_word, add_special_tokens=False)["input_ids"]
    if not ids or model.tokenizer.unk_token_id in ids:
        raise ValueError(f"init-word: the text encoder does not know {init_word!r}; give an everyday word for the "
                         f"subject (toy, dog, style)")
    table = model.text_encoder.model.get_input_embeddings().weight
    return table[ids].mean(0, keepdim=True).detach().clone()


def finetune_textual_inversion(base: Path, data: Path, out_file: Path, run_dir: Path, loop: LoopConfig, *,
                               init_word: str, resume: bool = False, admission: Admission | None = None) -> dict:
    """Learn the word `out_file`'s stem names on dataset `data`, for the diffusion model folder `base`."""
    from dataclasses import replace

    from kaiga.data.admit import admit
    from kaiga.finetune.embedding import EmbeddingError, add_word, check_trigger, supports_embeddings
    from kaiga.model_files import model_hash, resolve_model

    trigger = check_trigger(Path(out_file).stem)
    ref = resolve_model(str(base))
    model = LatentDiffusion.load(base, dtype=torch.float32)
    if not supports_embeddings(model):
        raise EmbeddingError(f"model: {ref.name}'s text encoder has a closed vocabulary; textual inversion needs "
                             f"the pretrained one (a model from v6 on)")
    if torch.cuda.is_available():
        model.to("cuda")
    model.set_stage(DiffusionStage.DENOISER)
    model.requires_grad_(False)
    add_word(model, trigger, init_vector(model, init_word), trainable=True)
    admission = admission or admit(Path(data))
    admission = replace(admission, examples=[replace(ex, captions=trigger_captions(ex.captions, trigger, init_word))
                                             for ex in admission.examples])
    task = TextualInversionTask(model, data, out_file, trigger, init_word,
                                {"model": ref.name, "model_hash": model_hash(ref)}, batch_size=loop.batch_size,
                                uncond_prob=0.0, cache_dir=Path(run_dir) / "cache", admission=admission)
    return train(task, loop, run_dir, resume=resume)
