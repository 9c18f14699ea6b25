"""`kaiga finetune --method lora`: LoRA adapters trained on a user's captioned images, on the shared loop.

The base diffusion model is loaded frozen; peft LoRA layers on its UNet's attention projections are all that
trains (kaiga/finetune/lora.py), with the denoiser's own loss over the autoencoder's latents of the images. The
run folder keeps checkpoints (so `--resume` continues), sample grids and the log; the result is one
`.safetensors` file of the adapters (EMA weights), whose metadata names the base model by hash, the rank and
alpha, and the dataset's card (sources, licences and consent, with counts).

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
