import json

import pytest
import torch

from kaiga.data.dataset import to_float
from kaiga.families.diffusion.model import DiffusionStage, LatentDiffusion, tiny_config
from kaiga.train.family_task import FamilyTask
from kaiga.train.loop import LoopConfig, train


def _denoiser(data, model=None, batch_size=8, cache_dir=None):
    """The diffusion family's denoiser stage as `kaiga train diffusion` runs it."""
    if model is None:
        torch.manual_seed(0)
        model = LatentDiffusion.create(tiny_config())
    model.set_stage(DiffusionStage.DENOISER)
    return FamilyTask(model, data, batch_size=batch_size, uncond_prob=0.1, cache_dir=cache_dir)


_task = _denoiser


def _mean_loss(task, steps=8):
    with torch.no_grad():
        losses = [task.module(task.batch(10_000 + i, 0, torch.Generator().manual_seed(i)))[0] for i in range(steps)]
    return torch.stack(losses).mean().item()


def test_a_few_steps_lower_the_diffusion_loss(tiny_scenes, tmp_path):
    task = _task(tiny_scenes)
    before = _mean_loss(task)
    train(task, LoopConfig(steps=40, lr=2e-3, warmup_steps=0, progress=False, sample_every=0), tmp_path)
    assert _mean_loss(task) < before


def test_resume_continues_exactly_where_it_stopped(tiny_scenes, tmp_path):
    cfg = LoopConfig(steps=6, lr=1e-3, warmup_steps=2, checkpoint_every=3, progress=False, sample_every=0)
    straight = _task(tiny_scenes)
    train(straight, cfg, tmp_path / "a")
    stopped = _task(tiny_scenes)
    train(stopped, LoopConfig(**{**cfg.__dict__, "steps": 3}), tmp_path / "b")
    resumed = _task(tiny_scenes)  # a fresh process: new weights, state comes from the checkpoint
    state = train(resumed, cfg, tmp_path / "b", resume=True)
    assert state["step"] == 6
    for (k, a), b in zip(straight.module.state_dict().items(), resumed.module.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_bf16_training_lowers_the_loss_and_keeps_float32_weights(tiny_scenes, tmp_path):
    """--precision bf16: the forward runs under bfloat16 autocast, but what is stored and saved stays float32."""
    task = _task(tiny_scenes)
    before = _mean_loss(task)
    train(task, LoopConfig(steps=40, lr=2e-3, warmup_steps=0, progress=False, sample_every=0, precision="bf16"),
          tmp_path)
    assert _mean_loss(task) < before
    assert all(p.dtype == torch.float32 for p in task.module.parameters())
    assert json.loads((tmp_path / "train_config.json").read_text())["precision"] == "bf16"
    with pytest.raises(ValueError, match="precision must be fp32 or bf16"):
        train(_task(tiny_scenes), LoopConfig(steps=1, progress=False, precision="fp16"), tmp_path / "x")


class StepClock:
    """The loop's clock in a test: it moves only when a step takes its batch, one second each time."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def timed(self, task):
        """`task`, with each batch it gives (one per optimiser step) taking one second on this clock."""
        batch = task.batch

        def one_second_batch(*args):
            self.now += 1.0
            return batch(*args)

        task.batch = one_second_batch
        return task


def test_a_time_limit_stops_early_with_checkpoint_and_model_and_resume_goes_on(tiny_scenes, tmp_path, monkeypatch):
    from kaiga.train import loop

    clock = StepClock()
    monkeypatch.setattr(loop, "time", clock)  # the loop's own clock, not the time module's
    cfg = LoopConfig(steps=10_000, lr=1e-3, warmup_steps=0, checkpoint_every=10_000, progress=False, sample_every=0,
                     max_seconds=2.5)  # out of time after the third one-second step
    state = train(clock.timed(_task(tiny_scenes)), cfg, tmp_path)
    assert (state["step"], state["seconds"]) == (3, 3.0)
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["step"] == 3
    LatentDiffusion.load(tmp_path)  # exported as at a normal end
    again = train(clock.timed(_task(tiny_scenes)), cfg, tmp_path, resume=True)
    assert (again["step"], again["seconds"]) == (6, 6.0)  # a new 2.5 s budget: three more steps


def test_training_writes_checkpoint_samples_log_and_the_model(tiny_scenes, tmp_path):
    task = _task(tiny_scenes)
    train(task, LoopConfig(steps=4, checkpoint_every=2, sample_every=2, log_every=1, progress=False), tmp_path)
    assert (tmp_path / "checkpoint" / "model.safetensors").is_file()
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pt"))
    assert (tmp_path / "samples" / "step0000004.png").is_file()
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 4
    model = LatentDiffusion.load(tmp_path)  # the exported EMA model loads as a model folder
    assert tuple(model.unet.config.block_out_channels) == tuple(tiny_config().unet.block_out_channels)
    assert json.loads((tmp_path / "kaiga.json").read_text())["family"] == "diffusion"


def test_decoder_only_training_keeps_the_latents(tiny_scenes, tmp_path):
    torch.manual_seed(0)
    model = LatentDiffusion.create(tiny_config())
    model.set_stage(DiffusionStage.AUTOENCODER, decoder_only=True)
    task = FamilyTask(model, tiny_scenes, batch_size=4)
    x = to_float(task.pixels[:2])
    before_z = model.vae.encode(x).latent_dist.mode().detach().clone()
    before_dec = model.vae.decoder.conv_out.weight.detach().clone()
    train(task, LoopConfig(steps=3, lr=1e-2, warmup_steps=0, progress=False, sample_every=0), tmp_path)
    torch.testing.assert_close(model.vae.encode(x).latent_dist.mode(), before_z)
    assert not torch.equal(model.vae.decoder.conv_out.weight, before_dec)


def test_latents_are_cached_for_resumed_runs(tiny_scenes, tmp_path):
    first = _denoiser(tiny_scenes, LatentDiffusion.create(tiny_config()), cache_dir=tmp_path)
    assert (tmp_path / "latents.safetensors").is_file()
    model = LatentDiffusion.create(tiny_config())
    model.vae.load_state_dict(first.model.vae.state_dict())
    again = _denoiser(tiny_scenes, model, cache_dir=tmp_path)
    torch.testing.assert_close(again.cached["latents"], first.cached["latents"])
    other = _denoiser(tiny_scenes, LatentDiffusion.create(tiny_config()), cache_dir=tmp_path)  # new VAE weights
    assert not torch.equal(other.cached["latents"], first.cached["latents"])
    batch = first.batch(0, 0, torch.Generator().manual_seed(0))  # the denoiser's batches carry latents, not pixels
    assert "pixels" not in batch and batch["latents"].shape == (8, 4, 16, 16)


def test_autoencoder_stage_exports_a_model_with_unit_variance_latents(tiny_scenes, tmp_path):
    from kaiga.train.commands import train_autoencoder

    train_autoencoder(tiny_scenes, tmp_path, LoopConfig(steps=2, batch_size=4, progress=False, sample_every=2),
                      size="tiny")
    model = LatentDiffusion.load(tmp_path)
    assert (tmp_path / "samples" / "step0000002.png").is_file()  # renders above their reconstructions
    pixels = to_float(FamilyTask(model, tiny_scenes).pixels[:8])
    z = model.vae.encode(pixels).latent_dist.mode()
    assert model.scaling_factor == pytest.approx(1 / z.std().item(), rel=0.2)
    assert model.info["training"]["runs"][-1]["stage"] == "autoencoder"


def test_fine_tuning_starts_from_the_given_model(tiny_scenes, tiny_model_dir, tmp_path):
    from kaiga.train.commands import train_denoiser

    start = LatentDiffusion.load(tiny_model_dir)
    train_denoiser(tiny_scenes, tmp_path, None, LoopConfig(steps=2, batch_size=4, lr=1e-4, warmup_steps=0,
                                                            progress=False, sample_every=0), init=tiny_model_dir)
    tuned = LatentDiffusion.load(tmp_path)
    before, after = start.unet.conv_in.weight, tuned.unet.conv_in.weight
    assert before.shape == after.shape and (before - after).abs().max() < 0.01  # started from it, moved a little
    torch.testing.assert_close(tuned.vae.encoder.conv_in.weight, start.vae.encoder.conv_in.weight.to(torch.float16).float())
    # kaiga.json keeps the runs that made the model it started from, then this fine-tune
    runs = tuned.info["training"]["runs"]
    assert runs[:-1] == (start.info.get("training") or {}).get("runs", [])
    assert (runs[-1]["stage"], runs[-1]["steps"], runs[-1]["batch"], runs[-1]["data"]) == ("denoiser", 2, 4, tiny_scenes.name)
    with pytest.raises(ValueError, match="--vae is needed"):
        train_denoiser(tiny_scenes, tmp_path / "x", None, LoopConfig(steps=1, progress=False))


def test_a_compact_checkpoint_resumes_the_trained_parts(tiny_scenes, tmp_path):
    """What a session commits to carry a run to the next one (kaiga.train.checkpoint.compact_checkpoint): only
    the trained weights, EMA in fp16, moments in bf16; the run resumes from it, close to the uncut run."""
    from kaiga.train.checkpoint import compact_checkpoint

    cfg = LoopConfig(steps=6, lr=1e-3, warmup_steps=2, checkpoint_every=3, progress=False, sample_every=0)
    straight = _task(tiny_scenes)
    train(straight, cfg, tmp_path / "a")
    train(_task(tiny_scenes), LoopConfig(**{**cfg.__dict__, "steps": 3}), tmp_path / "b")
    sizes = compact_checkpoint(tmp_path / "b" / "checkpoint", tmp_path / "c" / "checkpoint", keep=("unet.", "text_encoder."))
    full = sum(p.stat().st_size for p in (tmp_path / "b" / "checkpoint").iterdir())
    assert sum(sizes.values()) < full * 0.7
    from safetensors.torch import load_file

    assert not any(k.startswith("vae.") for k in load_file(tmp_path / "c" / "checkpoint" / "model.safetensors"))
    with pytest.raises(ValueError, match="trained"):  # a prefix left out that trains
        compact_checkpoint(tmp_path / "b" / "checkpoint", tmp_path / "d", keep=("vae.",))
    resumed = _task(tiny_scenes)
    state = train(resumed, cfg, tmp_path / "c", resume=True)
    assert state["step"] == 6
    for (k, a), b in zip(straight.module.state_dict().items(), resumed.module.state_dict().values()):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=0, msg=k)


def test_a_lean_checkpoint_resumes_from_the_average_with_a_fresh_optimizer(tiny_scenes, tmp_path):
    """`compact_checkpoint(..., lean=True)`: the EMA alone in fp16. The resumed run starts its weights from that
    average, its optimizer afresh, and warms its rate up again from the step it resumed at."""
    import json

    from safetensors.torch import load_file

    from kaiga.train.checkpoint import compact_checkpoint

    cfg = LoopConfig(steps=3, lr=1e-3, warmup_steps=2, checkpoint_every=3, log_every=1, progress=False, sample_every=0)
    train(_task(tiny_scenes), cfg, tmp_path / "b")
    trained = ("unet.", "text_encoder.")
    compact = compact_checkpoint(tmp_path / "b" / "checkpoint", tmp_path / "c" / "checkpoint", keep=trained)
    lean = compact_checkpoint(tmp_path / "b" / "checkpoint", tmp_path / "l" / "checkpoint", keep=trained, lean=True)
    assert set(lean) == {"ema.safetensors", "state.json", "compact.json"}
    assert sum(lean.values()) < sum(compact.values()) / 3
    average = load_file(tmp_path / "l" / "checkpoint" / "ema.safetensors")
    assert {v.dtype for v in average.values()} == {torch.float16}

    import shutil

    shutil.copytree(tmp_path / "l", tmp_path / "l0")
    at_start = _task(tiny_scenes)  # resumed with no step left to take: its weights are the average's
    train(at_start, cfg, tmp_path / "l0", resume=True)
    weights = at_start.module.state_dict()
    for k, v in average.items():
        torch.testing.assert_close(weights[k], v.float(), msg=k)

    state = train(_task(tiny_scenes), LoopConfig(**{**cfg.__dict__, "steps": 5}), tmp_path / "l", resume=True)
    assert (state["step"], state["rewarm_from"]) == (5, 3)
    rates = [json.loads(line)["lr"] for line in (tmp_path / "l" / "log.jsonl").read_text().splitlines()]
    assert rates == pytest.approx([1e-3, 1e-3])  # the next step's rate: step 4 at the full rate, after step 3 at half
