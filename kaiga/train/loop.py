"""One training loop for every family, on Accelerate (1..N processes, CPU or GPU).

A family supplies a `TrainTask`: a module whose `forward(batch)` returns `(loss, logs)`, a way to
draw batch `step` for process `rank`, a grid of samples, and an export of the final weights. The
loop owns what is common: AdamW with warm-up, gradient clipping, EMA, safetensors checkpoints that
resume exactly (batches are drawn from a generator seeded by step, not by history), a progress bar
and a JSON-lines log.

Example (a toy task):
    >>> import torch, tempfile
    >>> class Toy(TrainTask):
    ...     def __init__(self): self.module = _Quadratic()
    ...     def batch(self, step, rank, g): return torch.randn(8, generator=g)
    >>> toy = Toy()
    >>> state = train(toy, LoopConfig(steps=50, lr=0.2, warmup_steps=0, progress=False), tempfile.mkdtemp())
    >>> state["step"], abs(toy.module.w.item()) < 1.0
    (50, True)
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from kaiga.train.checkpoint import load_checkpoint, save_checkpoint
from kaiga.train.ema import ema_state_dict, init_ema, update_ema

CHECKPOINT_DIR = "checkpoint"


@dataclass(frozen=True)
class LoopConfig:
    steps: int = 1000
    batch_size: int = 32  # per process
    lr: float = 5e-4
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    checkpoint_every: int = 250  # steps; also written at the end
    sample_every: int = 500  # steps; 0 = never
    log_every: int = 10
    seed: int = 0
    progress: bool = True
    max_seconds: float | None = None  # stop early (checkpoint + export as usual) after this much running time
    decay_from: int | None = None  # from this step the rate falls (half a cosine) to final_lr_ratio of it at `steps`
    final_lr_ratio: float = 0.1
    # "bf16": forward and backward under bfloat16 autocast, float32 master weights, optimiser and EMA (the weights
    # saved are float32 as always). On this CPU (AMX) the v6 denoiser's step takes 0.65x the time (bench/train_step.py).
    precision: str = "fp32"


class TrainTask:
    """What a family gives the loop. Subclasses set `self.module` and implement `batch`."""

    module: torch.nn.Module

    def batch(self, step: int, rank: int, generator: torch.Generator):
        raise NotImplementedError

    def param_groups(self, cfg: "LoopConfig") -> list[dict]:
        """The optimiser's parameter groups; a family overrides it for its own rates (a GAN's G and D)."""
        return [{"params": list(self.module.parameters())}]  # frozen ones get no gradient, so no update

    def sample_grid(self, module: torch.nn.Module, step: int):
        """A PIL image of samples from `module` (EMA weights), or None."""
        return None

    def export(self, state_dict: dict[str, torch.Tensor], out: Path) -> None:
        """Write the finished model (given its EMA weights) under `out`."""


class _Quadratic(torch.nn.Module):
    """The doctest's toy: loss = mean((x - w)²)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(3.0))

    def forward(self, x):
        loss = ((x - self.w) ** 2).mean()
        return loss, {}


def _to(batch, device):
    if torch.is_tensor(batch):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
    return batch


def _lr_lambda(cfg: LoopConfig, rewarm_from: int | None = None):
    """The rate's multiplier at each step: a linear warmup, then 1, then (from `decay_from`) half a cosine down to
    `final_lr_ratio` at the last step. A function of the step alone, so a resumed run, even one resumed with a
    decay it did not have before, continues on the same curve. A run resumed with a fresh optimizer (a lean
    checkpoint, kaiga.train.checkpoint.compact_checkpoint) warms up again from `rewarm_from`.

    >>> f = _lr_lambda(LoopConfig(steps=100, warmup_steps=0, decay_from=50))
    >>> [round(f(s), 3) for s in (0, 50, 75, 100)]
    [1.0, 1.0, 0.55, 0.1]
    >>> [round(_lr_lambda(LoopConfig(steps=100, warmup_steps=10), rewarm_from=40)(s), 2) for s in (39, 40, 44, 60)]
    [1.0, 0.1, 0.5, 1.0]
    """
    def f(step: int) -> float:  # a multiplier of each group's own rate
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if rewarm_from is not None and rewarm_from <= step < rewarm_from + cfg.warmup_steps:
            return (step - rewarm_from + 1) / cfg.warmup_steps * f_after(step)
        return f_after(step)

    def f_after(step: int) -> float:
        if cfg.decay_from is not None and step > cfg.decay_from:
            done = min(1.0, (step - cfg.decay_from) / max(1, cfg.steps - cfg.decay_from))
            return cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * done))
        return 1.0

    return f


def training_record(before: dict | None, out, stage: str, data: str, **extra) -> dict:
    """kaiga.json's "training": the runs of the model a run started from (`before`), then this one.

    Read from the run folder `out` after the loop: steps, wall-clock, processes and device from the
    checkpoint's state, batch and learning rate from train_config.json. A resumed run starts from the
    same model as before, so it replaces its own entry instead of adding one.
    """
    out = Path(out)
    state = json.loads((out / CHECKPOINT_DIR / "state.json").read_text())
    loop = json.loads((out / "train_config.json").read_text())
    runs = list((before or {}).get("runs", []))
    runs.append({"stage": stage, "steps": state["step"], "batch": loop["batch_size"], "lr": loop["lr"],
                 "seconds": round(state["seconds"], 1), "loss": round(state["loss"], 4),
                 "processes": state.get("processes", 1), "device": state.get("device", "cpu"), "data": data,
                 **({"precision": loop["precision"]} if loop.get("precision", "fp32") != "fp32" else {}), **extra})
    # Only the runs: free-text notes of a shipped model ("recipe", ...) describe its own runs, not this one.
    return {"runs": runs, "seconds": round(sum(r["seconds"] for r in runs), 1)}


def train(task: TrainTask, cfg: LoopConfig, out, resume: bool = False, accelerator: Accelerator | None = None) -> dict:
    """Run `cfg.steps` optimiser steps of `task` (fewer if `cfg.max_seconds` runs out first: the run then
    checkpoints and exports as at its end, and `--resume` with more time continues it); returns the final
    loop state (step, loss, seconds)."""
    out = Path(out)
    # cpu=True on CPU-only machines is what makes torchrun's processes meet over gloo (FACTS.md).
    if cfg.precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16, not {cfg.precision!r}")
    acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    if acc.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # float32 stays the master copy
    module = task.module.to(acc.device)  # before the EMA copy, so the average lives where the weights do
    opt = torch.optim.AdamW(task.param_groups(cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # made before the checkpoint loads, so its base rates are this call's (a resumed run may change --lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    ema = init_ema(module)
    state = {"step": 0, "loss": math.nan, "seconds": 0.0, "processes": acc.num_processes, "device": _device_name(acc)}
    ckpt = out / CHECKPOINT_DIR
    if resume and (ckpt / "state.json").exists():
        state = {**load_checkpoint(ckpt, module, opt, ema), "device": state["device"]}  # where it runs now
        sched.last_epoch = state["step"]
        if "rewarm_from" in state:  # resumed lean: a fresh optimizer
            sched.lr_lambdas = [_lr_lambda(cfg, state["rewarm_from"])] * len(opt.param_groups)
        for group, base, rate in zip(opt.param_groups, sched.base_lrs, sched.lr_lambdas):
            group["lr"] = base * rate(state["step"])  # the rate of the step it resumes at, as an unbroken run has
        acc.print(f"resumed from {ckpt} at step {state['step']}")
    model, opt = acc.prepare(module, opt)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    log = open(out / "log.jsonl", "a") if acc.is_main_process else None
    bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TimeRemainingColumn(), disable=not (cfg.progress and acc.is_main_process))
    started, smooth = time.perf_counter() - state["seconds"], None
    deadline = time.perf_counter() + cfg.max_seconds if cfg.max_seconds else math.inf
    with bar:
        bar_id = bar.add_task("train", total=cfg.steps, completed=state["step"], info="")
        while state["step"] < cfg.steps:
            step = state["step"]
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 101 + acc.process_index)
            batch = _to(task.batch(step, acc.process_index, g), acc.device)
            model.train()
            # Autocast here rather than Accelerator(mixed_precision=): accelerate's state is one per process.
            with torch.autocast(acc.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                loss, logs = model(batch)
            acc.backward(loss)
            if cfg.grad_clip:
                acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            if acc.is_main_process:
                update_ema(ema, acc.unwrap_model(model), cfg.ema_decay, step)
            loss_value = acc.gather(loss.detach()).mean().item()
            smooth = loss_value if smooth is None else 0.98 * smooth + 0.02 * loss_value
            state.update(step=step + 1, loss=smooth, seconds=time.perf_counter() - started)
            bar.update(bar_id, advance=1, info=f"loss {smooth:.4f}")
            if log and (step + 1) % cfg.log_every == 0:
                log.write(json.dumps({"step": step + 1, "loss": loss_value, "smooth": smooth,
                                      "lr": sched.get_last_lr()[0], "seconds": round(state["seconds"], 1), **logs}) + "\n")
                log.flush()
            last = state["step"] == cfg.steps or _out_of_time(acc, deadline)
            if acc.is_main_process and ((step + 1) % cfg.checkpoint_every == 0 or last):
                save_checkpoint(ckpt, acc.unwrap_model(model), opt, ema, state)
            if acc.is_main_process and cfg.sample_every and ((step + 1) % cfg.sample_every == 0 or last):
                _write_samples(task, module, ema, out, step + 1)
            if last:
                break
    acc.wait_for_everyone()
    if acc.is_main_process:
        task.export(ema_state_dict(acc.unwrap_model(model), ema), out)
        log.close()
    return state


def _device_name(acc: Accelerator) -> str:
    """What trained the model, for its training record: the GPU's name, or the CPU threads."""
    if acc.device.type == "cuda":
        return torch.cuda.get_device_name(acc.device)
    return f"{acc.device.type} ({torch.get_num_threads()} threads)"


def _out_of_time(acc: Accelerator, deadline: float) -> bool:
    """Whether the time limit has passed, decided for all processes at once (one stopping alone would hang the rest)."""
    if deadline == math.inf:
        return False
    late = time.perf_counter() >= deadline
    if acc.num_processes == 1:
        return late
    return bool(acc.reduce(torch.tensor(float(late), device=acc.device), reduction="sum").item())


def _write_samples(task: TrainTask, module: torch.nn.Module, ema: dict, out: Path, step: int) -> None:
    """Sample with the EMA weights, then put the trained weights back."""
    trained = {k: v.detach().clone() for k, v in module.state_dict().items()}
    module.load_state_dict(ema_state_dict(module, ema))
    module.eval()
    with torch.no_grad():
        grid = task.sample_grid(module, step)
    module.load_state_dict(trained)
    if grid is not None:
        (out / "samples").mkdir(exist_ok=True)
        grid.save(out / "samples" / f"step{step:07d}.png")
