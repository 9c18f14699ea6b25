"""Resumable training checkpoints in safetensors only (no pickle, so loading one runs no code).

Accelerate's `save_state` pickles the optimizer; here the optimizer's tensors go into a
safetensors file and its scalars into JSON, so a checkpoint is as safe to open as a model.

Example:
    >>> import torch, tempfile
    >>> m = torch.nn.Linear(2, 2); opt = torch.optim.AdamW(m.parameters())
    >>> d = tempfile.mkdtemp()
    >>> save_checkpoint(d, m, opt, ema=None, state={"step": 3})["step"]
    3
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

MODEL, EMA, OPTIM_T, OPTIM_J, STATE = "model.safetensors", "ema.safetensors", "optimizer.safetensors", "optimizer.json", "state.json"
COMPACT = "compact.json"  # marks a checkpoint that holds only the trained parts (`compact_checkpoint`)


def _optimizer_split(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {"param_groups": sd["param_groups"], "state": {}}
    for pid, st in sd["state"].items():
        scalars["state"][str(pid)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.contiguous()
            else:
                scalars["state"][str(pid)][k] = v
    return tensors, scalars


def _optimizer_join(tensors: dict[str, torch.Tensor], scalars: dict) -> dict:
    state: dict[int, dict] = {int(pid): dict(v) for pid, v in scalars["state"].items()}
    for key, t in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = t
    return {"state": state, "param_groups": scalars["param_groups"]}


def save_checkpoint(folder, model: torch.nn.Module, opt, ema: dict | None, state: dict) -> dict:
    """Write model, EMA, optimizer and loop state atomically: a crash mid-write keeps the old one."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / MODEL))
    if ema is not None:
        save_file({k: v.contiguous() for k, v in ema.items()}, str(tmp / EMA))
    tensors, scalars = _optimizer_split(opt)
    save_file(tensors, str(tmp / OPTIM_T))
    (tmp / OPTIM_J).write_text(json.dumps(scalars))
    (tmp / STATE).write_text(json.dumps(state))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return state


def load_checkpoint(folder, model: torch.nn.Module, opt, ema: dict | None) -> dict:
    """Restore what `save_checkpoint` wrote; returns the loop state (step, ...)."""
    folder = Path(folder)
    compact = (folder / COMPACT).exists()
    lean = not (folder / MODEL).exists()  # a lean carry: the average stands in for the weights too
    source = EMA if lean else MODEL
    weights = {k: v.float() if compact else v for k, v in load_file(str(folder / source)).items()}
    unexpected = model.load_state_dict(weights, strict=not compact).unexpected_keys
    if unexpected:
        raise ValueError(f"{folder}: weights the model does not have: {', '.join(unexpected[:5])}")
    if ema is not None and (folder / EMA).exists():
        for k, v in load_file(str(folder / EMA)).items():
            ema[k].copy_(v)
    state = json.loads((folder / STATE).read_text())
    if lean:  # the optimizer starts afresh, so its rate warms up again from here (kaiga.train.loop._lr_lambda)
        return {**state, "rewarm_from": state["step"]}
    # a compact checkpoint's bf16 moments: the optimizer casts its state to each parameter's dtype on loading
    opt.load_state_dict(_optimizer_join(load_file(str(folder / OPTIM_T)), json.loads((folder / OPTIM_J).read_text())))
    return state


def compact_checkpoint(src, dst, keep: tuple[str, ...], lean: bool = False) -> dict:
    """`src`'s checkpoint made small enough to commit: only the weights under the prefixes `keep` (the parts
    that train; the frozen ones are rebuilt as the run builds them), the EMA in fp16 and the optimizer's
    moments in bf16 (their range: second moments underflow fp16). `load_checkpoint` resumes from it; the
    rounding happens once per carry, not per step. Returns {file: bytes}.

    `lean` keeps the EMA alone (in fp16): the resumed run starts its weights from the average and its optimizer
    afresh, with the rate warmed up again (`warmup_steps`) so fresh moments take no large first steps. It costs
    about one EMA time constant of training (1 / (1 - ema_decay) = 1,000 steps at the default) and a quarter
    of the size.

    Why: a full checkpoint of the v6 autoencoder stage is 98 MiB (the untrained denoiser and text encoder ride
    along in it, twice); its trained parts carried this way are 26 MiB. v6's denoiser carried compactly is
    68 MB, over what the repository's weights may add (100 MB in all); lean, 13 MB."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    kept = lambda d: {k: v.contiguous() for k, v in d.items() if k.startswith(keep)}  # noqa: E731
    weights = kept(load_file(str(src / MODEL)))
    optimizer = load_file(str(src / OPTIM_T))
    trained = sum(k.endswith(".exp_avg") for k in optimizer)  # one first moment per trained parameter
    if trained > len(weights):
        shutil.rmtree(tmp)
        raise ValueError(f"{src}: {trained} parameters trained but {', '.join(keep)} hold {len(weights)} tensors: "
                         f"a part that trains is left out")
    if lean and not (src / EMA).exists():
        shutil.rmtree(tmp)
        raise ValueError(f"{src}: no {EMA} to carry lean")
    if not lean:
        save_file(weights, str(tmp / MODEL))
    if (src / EMA).exists():
        save_file({k: v.half() for k, v in kept(load_file(str(src / EMA))).items()}, str(tmp / EMA))
    if not lean:
        moments = {k: v if v.ndim == 0 else v.bfloat16() for k, v in optimizer.items()}
        save_file(moments, str(tmp / OPTIM_T))
    for name in (STATE,) if lean else (OPTIM_J, STATE):
        shutil.copy(src / name, tmp / name)
    (tmp / COMPACT).write_text(json.dumps({"kept": list(keep), **({"lean": True} if lean else {})}) + "\n")
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
    return {p.name: p.stat().st_size for p in dst.iterdir()}
