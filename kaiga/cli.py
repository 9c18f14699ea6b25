"""The `kaiga` command line: parse, validate, present. No generation logic of its own.

Example:
    $ kaiga generate "a red car in the snow at night" --seed 7 --n 4 --grid
    $ kaiga info outputs/00007-a-red-car.png
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(help="kaiga: an AI image-generation studio. Every image carries how it was made.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Make datasets.", no_args_is_help=True)
train_app = typer.Typer(help="Train models (Accelerate: 1..N processes, CPU or GPU).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")

err = Console(stderr=True)
out = Console()

EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE):
    """One clear line (or a few, one per problem) on stderr, no traceback, then exit."""
    for line in message.splitlines():
        err.print(f"[bold red]error:[/] {line}", highlight=False)
    raise typer.Exit(code)


def _setup_logging():
    logging.basicConfig(level=logging.WARNING, format="%(message)s",
                        handlers=[_RichWarning()], force=True)


class _RichWarning(logging.Handler):
    def emit(self, record):
        err.print(f"[yellow]warning:[/] {record.getMessage()}", highlight=False)


def _slug(text: str, n: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:n] or "image"


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw, in plain English or as comma-separated tags.")],
    negative: Annotated[str, typer.Option("--negative", help="What to steer away from.")] = "",
    seed: Annotated[Optional[int], typer.Option(help="Seed of the first image; image i uses seed+i. Random if omitted.")] = None,
    n: Annotated[int, typer.Option("--n", help="Number of images (1-16).")] = 1,
    steps: Annotated[int, typer.Option(help="Denoising steps (1-150).")] = 20,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance scale (0-30); 1 turns guidance off.")] = 3.0,
    sampler: Annotated[str, typer.Option(help="ddim, euler, euler-a, dpm++2m or lcm (where the model supports it).")] = "ddim",
    width: Annotated[Optional[int], typer.Option(help="Width in pixels, a multiple of 8; default: the model's native size.")] = None,
    height: Annotated[Optional[int], typer.Option(help="Height in pixels, a multiple of 8; default: the model's native size.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model name (see `kaiga models`) or path to a diffusers folder or .safetensors file.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the PNGs.")] = Path("outputs"),
    grid: Annotated[bool, typer.Option("--grid", help="Also write all images as one contact sheet.")] = False,
    upscale: Annotated[int, typer.Option(help="Enlarge outputs for viewing (Lanczos, 1-8); the record keeps the native size.")] = 4,
    device: Annotated[Optional[str], typer.Option(help="cuda, mps or cpu; default: the best available.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="Config folder for a single-file checkpoint that has none inside (offline).")] = None,
):
    """Generate images from a prompt with the default model or --model.

    Each PNG carries an A1111-compatible `parameters` chunk and a kaiga generation record;
    the same seed and settings give the same image, whatever --n.
    """
    _setup_logging()
    from pydantic import ValidationError

    from kaiga.request import GenerationRequest, describe_error

    try:
        request = GenerationRequest(prompt=prompt, negative_prompt=negative, seed=seed, n=n, steps=steps,
                                    guidance=guidance, sampler=sampler, width=width, height=height,
                                    model=model, upscale=upscale)
    except ValidationError as e:
        fail(describe_error(e))

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kaiga.models import ModelError
    from kaiga.request import RequestError
    from kaiga.studio import Studio

    try:
        studio = Studio(device=device, config_dir=config)
        with Progress(TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("gen", total=request.n * request.steps)
            images = studio.generate(request, on_step=lambda done, total: bar.update(task, completed=done, total=total))
    except (RequestError, ModelError) as e:
        fail(str(e))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for img in images:
        path = out_dir / f"{img.record.seed:010d}-{_slug(prompt)}.png"
        paths.append(img.save(path))
        typer.echo(str(path))  # plain: paths are for scripts too, never wrapped
    if grid and len(images) > 1:
        from kaiga.metadata import save_png
        from kaiga.images import contact_sheet

        sheet = out_dir / f"grid-{images[0].record.seed:010d}-{_slug(prompt)}.png"
        save_png(contact_sheet([i.image for i in images]), images[0].record, sheet)
        typer.echo(str(sheet))


@app.command()
def info(image: Annotated[Path, typer.Argument(help="A PNG/JPEG/WebP from kaiga, AUTOMATIC1111 or ComfyUI.")]):
    """Print how an image was made: kaiga records, A1111 parameters or a ComfyUI graph."""
    from kaiga.metadata import MetadataError, describe, read_metadata

    if not image.is_file():
        fail(f"{image} is not a file")
    try:
        out.print(describe(read_metadata(image)), highlight=False)
    except MetadataError as e:
        fail(str(e))


@app.command()
def models(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Extra model paths to identify.")] = None,
):
    """List bundled models, models in the user's model directory ($KAIGA_HOME/models), and PATHS."""
    from rich.table import Table

    from kaiga.models import ModelError, list_models, user_models_dir

    try:
        refs = list_models(paths or [])
    except ModelError as e:
        fail(str(e))
    table = Table("name", "family", "format", "source", "path")
    for r in refs:
        table.add_row(r.name, r.family, r.format.value, r.source, str(r.path))
    out.print(table)
    out.print(f"user model directory: {user_models_dir()}", highlight=False)


@data_app.command("scenes")
def data_scenes(
    n: Annotated[int, typer.Option("--n", min=1, max=10_000_000, help="Number of images.")] = 1000,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write (images, metadata.jsonl, manifest.json).")] = Path("data/scenes"),
    seed: Annotated[int, typer.Option(help="Seed of the stream; the same seed gives the same dataset.")] = 0,
    split: Annotated[str, typer.Option(help="train (no held-out combination), heldout (only those) or any.")] = "train",
):
    """Render the procedural scenes world: 64×64 images with captions and exact attributes."""
    if split not in ("train", "heldout", "any"):
        fail(f"split: must be train, heldout or any (got {split!r})")
    import time

    from rich.progress import Progress

    from kaiga.data.dataset import write_scenes

    t0 = time.perf_counter()
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("rendering", total=n)
        write_scenes(out_dir, n, seed=seed, split=split, progress=lambda k: bar.advance(task, k))
    dt = time.perf_counter() - t0
    out.print(f"wrote {n} images to {out_dir} ({n / dt:.0f} images/s)", highlight=False)


def _loop_options(steps, batch_size, lr, checkpoint_every, sample_every, seed):
    from kaiga.train.loop import LoopConfig

    return LoopConfig(steps=steps, batch_size=batch_size, lr=lr, checkpoint_every=checkpoint_every,
                      sample_every=sample_every, seed=seed, warmup_steps=min(200, steps // 10))


_Steps = Annotated[int, typer.Option(min=1, help="Optimiser steps in all (a resumed run continues to this).")]
_Batch = Annotated[int, typer.Option("--batch-size", min=1, max=4096, help="Images per step per process.")]
_Data = Annotated[Path, typer.Option(help="Dataset folder: images + metadata.jsonl (see `kaiga data scenes`).")]
_Out = Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, samples, log, final model.")]
_Resume = Annotated[bool, typer.Option(help="Continue from the run folder's checkpoint.")]
_Size = Annotated[str, typer.Option(help="Model size preset: default or tiny (for tests).")]


@train_app.command("vae")
def train_vae(data: _Data, out_dir: _Out, steps: _Steps = 1000, batch_size: _Batch = 32,
              lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-3,
              checkpoint_every: int = 100, sample_every: int = 100, seed: int = 0,
              resume: _Resume = False, size: _Size = "default",
              init: Annotated[Optional[Path], typer.Option(help="Start from this trained autoencoder (run or model folder).")] = None,
              decoder_only: Annotated[bool, typer.Option(help="Keep the encoder (and so the latents) fixed; sharpen the decoder.")] = False):
    """Train the autoencoder (AutoencoderKL) whose latent space the diffusion model works in."""
    from kaiga.data.dataset import DatasetError
    from kaiga.train.commands import train_autoencoder

    try:
        state = train_autoencoder(data, out_dir, _loop_options(steps, batch_size, lr, checkpoint_every, sample_every, seed),
                                  size=size, resume=resume, init=init, decoder_only=decoder_only)
    except (DatasetError, ValueError, OSError) as e:
        fail(str(e))
    out.print(f"autoencoder: {state['step']} steps, loss {state['loss']:.4f}, {state['seconds']:.0f} s -> {out_dir / 'vae'}")


@train_app.command("diffusion")
def train_diffusion(data: _Data, out_dir: _Out,
                    vae: Annotated[Optional[Path], typer.Option(help="Trained autoencoder: a `kaiga train vae` run folder or a model folder.")] = None,
                    init: Annotated[Optional[str], typer.Option(help="Fine-tune this model (name or folder) instead of starting from scratch.")] = None,
                    steps: _Steps = 5000, batch_size: _Batch = 32,
                    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 5e-4,
                    checkpoint_every: int = 100, sample_every: int = 250, seed: int = 0,
                    resume: _Resume = False, size: _Size = "default"):
    """Train the denoising UNet and text encoder (v-prediction, zero-terminal-SNR, min-SNR-5)."""
    from kaiga.data.dataset import DatasetError
    from kaiga.models import ModelFormat, resolve_model
    from kaiga.train.commands import train_denoiser

    try:
        init_path = None
        if init is not None:
            ref = resolve_model(init)
            if ref.format is not ModelFormat.DIFFUSERS_FOLDER:
                fail("init: fine-tuning needs a diffusers model folder")
            init_path = ref.path
        state = train_denoiser(data, out_dir, vae, _loop_options(steps, batch_size, lr, checkpoint_every, sample_every, seed),
                               size=size, resume=resume, init=init_path)
    except (DatasetError, ValueError, OSError) as e:
        fail(str(e))
    out.print(f"diffusion: {state['step']} steps, loss {state['loss']:.4f}, {state['seconds']:.0f} s -> {out_dir}")


def main():
    app()


if __name__ == "__main__":
    main()
