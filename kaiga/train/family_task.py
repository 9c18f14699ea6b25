"""The dataset task that trains any `ImageGenerator` family, every stage, on the shared loop.

It keeps every image of a dataset folder in memory as uint8 and every caption tokenized once, then
draws batches `{"pixels", "input_ids", "generator"}` from the step's seeded generator (so a resumed
run sees the same batches). A stage whose model gives `cached_inputs` (diffusion's denoiser: the
latents of every image, encoded once and kept in `cache_dir`) gets those in place of the pixels. Sample grids and the final export go through the family's own
`sample` and `save`, so what training writes is what `kaiga generate` will load.

Example:
    >>> import tempfile, torch
    >>> from kaiga.data.dataset import write_scenes
    >>> from kaiga.families.vae.model import ConditionalVAE
    >>> d = write_scenes(tempfile.mkdtemp(), n=4)
    >>> task = FamilyTask(ConditionalVAE.create(ConditionalVAE.config_class.tiny()), d, batch_size=2)
    >>> task.batch(0, 0, torch.Generator().manual_seed(0))["pixels"].shape
    torch.Size([2, 3, 64, 64])
"""

from __future__ import annotations

from pathlib import Path

import torch

from kaiga.data.admit import Admission, admit
from kaiga.data.captions import GRID_PROMPTS
from kaiga.data.dataset import load_pixels, to_float
from kaiga.families.base import ImageGenerator
from kaiga.images import grid, pil_grid
from kaiga.provenance.card import read_card, run_card, write_card
from kaiga.request import GenerationRequest
from kaiga.train.loop import LoopConfig, TrainTask, training_record


class FamilyTask(TrainTask):
    """Train `model` (its `loss`) on the images and captions of dataset folder `data`.

    `uncond_prob` replaces that share of captions by the empty prompt, for families that sample with
    classifier-free guidance. `admission`: the items that may train (kaiga/data/admit.py; default: `admit(data)`,
    which refuses items without a licence and leaves out the opted-out ones). `card_from`: model folders whose
    cards the new model's card continues (the model a fine-tune starts from, a diffusion model's autoencoder).
    """

    def __init__(self, model: ImageGenerator, data: Path, batch_size: int = 32, uncond_prob: float = 0.0,
                 cache_dir: Path | None = None, admission: Admission | None = None,
                 card_from: tuple[Path, ...] = ()):
        self.model = self.module = model
        self.batch_size, self.uncond_prob = batch_size, uncond_prob
        self.data = Path(data)
        self.admission = admission or admit(self.data)
        self.card_from = tuple(card_from)
        examples = self.admission.examples
        self.pixels = load_pixels(examples, int(model.info["native_size"]))
        self.cached = model.cached_inputs(self.pixels, self.data, cache_dir)  # {name: [N_images, ...]} or None
        captions = [c for ex in examples for c in ex.captions]
        self.owner = torch.tensor([i for i, ex in enumerate(examples) for _ in ex.captions])
        self.ids = model.tokenize(captions)
        self.empty_ids = model.tokenize([""])[0]

    def param_groups(self, cfg: LoopConfig) -> list[dict]:
        groups = getattr(self.model, "param_groups", None)
        return groups(cfg) if groups else super().param_groups(cfg)

    def batch(self, step, rank, generator):
        pick = torch.randint(0, len(self.ids), (self.batch_size,), generator=generator)
        ids = self.ids[pick].clone()
        if self.uncond_prob:
            ids[torch.rand(self.batch_size, generator=generator) < self.uncond_prob] = self.empty_ids
        images = self.owner[pick]
        # `step`: for losses that change over a run (the autoencoder's discriminator joins after a number of steps)
        if self.cached is not None:
            return {**{k: v[images] for k, v in self.cached.items()}, "input_ids": ids, "generator": generator,
                    "step": step}
        return {"pixels": to_float(self.pixels[images]), "input_ids": ids, "generator": generator, "step": step}

    def sample_grid(self, module, step):
        special = getattr(module, "training_grid", None)  # a stage that has no samples yet shows its own grid
        if special is not None and (images := special(to_float(self.pixels[:8]))) is not None:
            return grid(images)
        seeds = list(range(len(GRID_PROMPTS)))
        images = module.sample(GenerationRequest(prompt="grid"), seeds, prompts=list(GRID_PROMPTS))
        return pil_grid(images)

    def export(self, state_dict, out):
        self.model.load_state_dict(state_dict)
        self.model.finish_training(to_float(self.pixels[:1024]))
        # A stage's name (a transformer's tokenizer, a vae's prior); the family's name for whole-model runs
        stage = getattr(getattr(self.model, "stage", None), "value", None)
        stage = self.model.family if stage in (None, "all") else stage
        config = {k: v for k, v in self.model.info.get("config", {}).items() if not isinstance(v, dict)}
        recipe = getattr(self.model, "recipe", None)  # a stage's own losses, where it records them
        self.model.info["training"] = training_record(self.model.info.get("training"), out, stage,
                                                      self.data.name, config=config, **({"recipe": recipe} if recipe else {}))
        self.model.save(out, dtype=self.model.export_dtype)
        previous = [card for folder in self.card_from if (card := read_card(folder)) is not None]
        write_card(out, run_card(previous, self.admission.data_block(), stage, self.model.family))
