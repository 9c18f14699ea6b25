"""The `jit` backend: the UNet run as a traced, frozen TorchScript graph instead of diffusers' Python modules.

At batch 1 on a CPU a denoising step is small enough that Python is a large part of it: diffusers' UNet walks
~300 modules a call, and its attention processors call `inspect.signature` on every forward (a tenth of a
step here, cProfile). `torch.jit.trace` records the ops once; `torch.jit.freeze` folds the weights in as
constants and `optimize_for_inference` fuses what it can, so a step is the ops and nothing else.
`kaiga bench --backend jit` measures it against stock diffusers in one run.

Hand-written because no library does this for diffusers' UNet on a CPU: torch.compile also removes the
overhead but compiles for about a minute and again for each batch size (FACTS.md); a trace takes a few
seconds. The trace is made on first use for each input signature (shapes, dtypes, guidance embedding or not)
and kept while the UNet's weights are unchanged (their in-place version counters are part of the key, so a
training step or an edit of the weights traces again). A UNet carrying LoRA adapters runs
eagerly (their weights are set per request, and a frozen graph would hold the last ones), and so does one under
bf16 autocast (a frozen graph does not follow it).

Pixels are float32's within rounding (the traced graph runs the same kernels, some fused): the bench reports
the largest difference; `eager` (the default) stays the golden one.

Example:
    >>> import torch
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> m = LatentDiffusion.create(tiny_config())
    >>> _ = m.unet.eval()  # a UNet in training mode runs eagerly (dropout)
    >>> x, c = torch.randn(1, 4, 8, 8), torch.randn(1, 8, m.unet.config.cross_attention_dim)
    >>> with compute_backend("jit"):
    ...     unet = unet_for(m)
    >>> isinstance(unet, TracedUNet)
    True
    >>> (unet(x, torch.tensor(10), encoder_hidden_states=c).sample - m.unet(x, 10, c).sample).abs().max() < 1e-4
    tensor(True)
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import warnings
from dataclasses import dataclass
from typing import Iterator

import torch

BACKENDS = ("eager", "jit")
_backend: contextvars.ContextVar[str] = contextvars.ContextVar("kaiga_backend", default="eager")


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend: {' or '.join(BACKENDS)} (got {backend!r})")
    return backend


@contextlib.contextmanager
def compute_backend(backend: str) -> Iterator[None]:
    """A context in which the diffusion family's denoising loop runs its UNet on `backend` (this thread only)."""
    token = _backend.set(check_backend(backend))
    try:
        yield
    finally:
        _backend.reset(token)


@dataclass(frozen=True)
class UNetOutput:
    """What diffusers' UNet returns, as far as the denoising loop reads it."""

    sample: torch.Tensor


class _Positional(torch.nn.Module):
    """The UNet with positional tensor arguments, as `torch.jit.trace` needs them."""

    def __init__(self, unet, with_cond: bool):
        super().__init__()
        self.unet, self.with_cond = unet, with_cond

    def forward(self, x, t, context, cond=None):
        extra = {"timestep_cond": cond} if self.with_cond else {}
        return self.unet(x, t, encoder_hidden_states=context, return_dict=False, **extra)[0]


class TracedUNet:
    """Called as diffusers' UNet is in `denoise` (x, t, encoder_hidden_states=, timestep_cond=) -> .sample;
    traces per input signature, on first use."""

    def __init__(self, unet):
        self.unet = unet
        self.config = unet.config
        self._params = list(unet.parameters())  # listed once: walking the modules each call costs 2 ms a step
        self._graphs: dict[tuple, torch.jit.ScriptModule] = {}
        self._lock = threading.Lock()  # the server's threads share a model: one trace per signature

    def _weights_key(self) -> tuple[int, ...]:
        return tuple(p._version for p in self._params)

    def _graph(self, args: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule:
        key = (tuple((a.shape, a.dtype, a.device) for a in args), self._weights_key())
        with self._lock:
            graph = self._graphs.get(key)
            if graph is None:
                if len(self._graphs) >= 16:  # batch sizes and image sizes a server sees: keep the recent ones
                    self._graphs.pop(next(iter(self._graphs)))
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")  # TracerWarnings on diffusers' shape checks, fixed per trace
                    traced = torch.jit.trace(_Positional(self.unet, len(args) == 4).eval(), args, check_trace=False)
                    graph = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
                self._graphs[key] = graph
            return graph

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, t, encoder_hidden_states: torch.Tensor,
                 timestep_cond: torch.Tensor | None = None) -> UNetOutput:
        t = torch.as_tensor(t, device=x.device)
        if torch.is_autocast_enabled(x.device.type):  # a frozen graph does not follow autocast: bf16 runs eagerly
            return UNetOutput(self.unet(x, t, encoder_hidden_states=encoder_hidden_states,
                                        timestep_cond=timestep_cond).sample)
        args = (x, t, encoder_hidden_states) + ((timestep_cond,) if timestep_cond is not None else ())
        return UNetOutput(self._graph(args)(*args))


def _has_adapters(unet) -> bool:
    return bool(getattr(unet, "peft_config", None))


def unet_for(model):
    """The UNet the denoising loop should call for `model` under the current backend."""
    if _backend.get() == "eager" or _has_adapters(model.unet) or model.unet.training:
        return model.unet
    traced = getattr(model, "_traced_unet", None)
    if traced is None or traced.unet is not model.unet:
        traced = TracedUNet(model.unet)
        model._traced_unet = traced
    return traced
