"""The models a server offers, by name: requests name a model, never a path.

A name from a request is looked up here and only a known model's path ever reaches the loader,
so no request can make the server open an arbitrary file.

Example:
    >>> c = Catalog()
    >>> c.default.name, c.ref("scenes-diffusion").source
    ('scenes-diffusion', 'bundled')
    >>> c.describe("scenes-gan")["samplers"], c.describe("scenes-gan")["max_size"]
    ([], 64)
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from kaiga.capabilities import Capabilities, check_request
from kaiga.model_files import ModelError, ModelRef, list_models, model_hash, model_info, resolve_model
from kaiga.request import GenerationRequest, Sampler


class Catalog:
    """Bundled models, the user's models, and `extra` paths; `default` is used when a request names none."""

    def __init__(self, default: str | None = None, extra: tuple[Path, ...] = ()):
        extra_refs = list(extra)
        if default is not None and Path(default).expanduser().exists():
            extra_refs.append(Path(default).expanduser())
        refs = list_models(extra_refs)
        self._refs: dict[str, ModelRef] = {}
        for r in refs:
            self._refs.setdefault(r.name, r)
        self.default = self._refs[Path(default).name] if default and Path(default).exists() else resolve_model(default)
        self._refs.setdefault(self.default.name, self.default)
        self._hashes: dict[str, str] = {}
        self._infos: dict[str, dict] = {}

    @property
    def names(self) -> list[str]:
        return list(self._refs)

    def ref(self, name: str | None) -> ModelRef:
        if name is None:
            return self.default
        if name not in self._refs:
            raise ModelError(f"model: unknown model {name!r}; this server has {', '.join(self._refs)}")
        return self._refs[name]

    def hash(self, name: str) -> str:
        if name not in self._hashes:
            self._hashes[name] = model_hash(self.ref(name))
        return self._hashes[name]

    def info(self, name: str | None) -> dict:
        """The model's kaiga.json, or for a diffusers folder without one what its configs say (read once)."""
        ref = self.ref(name)
        if ref.name not in self._infos:
            self._infos[ref.name] = model_info(ref)  # what the loaded model will say, no weight read
        return self._infos[ref.name]

    def capabilities(self, name: str | None) -> Capabilities:
        return Capabilities.from_info(self.info(name))

    def describe(self, name: str | None) -> dict:
        """What a client needs to offer only what the model can do (the web UI's form): its capabilities
        (sizes, samplers, edits, the family options it reads, its defaults for steps and guidance) and
        whether it is the server's default."""
        caps = self.capabilities(name)
        described = {"default": self.ref(name).name == self.default.name, **caps.to_info()}
        if caps.denoises and not caps.samplers:
            # A diffusion model that declares no samplers (Stable Diffusion's own layout) takes every one.
            described["samplers"] = [s.value for s in Sampler]
        return described

    def check(self, request: GenerationRequest) -> None:
        """What the model cannot do, refused before queuing (the model checks again, the same way, when it runs),
        and a style that does not exist."""
        from kaiga.styles.mix import check_style

        caps = self.capabilities(request.model)
        check_request(caps, request)
        check_style(request)
        if request.lora.strip():
            from kaiga.finetune.lora import check_loras

            check_loras(caps.family, request.lora)

    @cached_property
    def models(self) -> list[ModelRef]:
        return list(self._refs.values())
