"""The models a server offers, by name: requests name a model, never a path.

A name from a request is looked up here and only a known model's path ever reaches the loader,
so no request can make the server open an arbitrary file.

Example:
    >>> c = Catalog()
    >>> c.default.name, c.ref("scenes-diffusion").source
    ('scenes-diffusion', 'bundled')
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

from kaiga.capabilities import Capabilities, check_request
from kaiga.model_files import ModelError, ModelFormat, ModelRef, list_models, model_hash, resolve_model
from kaiga.request import GenerationRequest, RequestError


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
        """The model's kaiga.json (read once: every request is checked against it)."""
        ref = self.ref(name)
        if ref.name not in self._infos:
            path = ref.path / "kaiga.json"
            exists = ref.format is not ModelFormat.SINGLE_FILE and path.exists()
            self._infos[ref.name] = json.loads(path.read_text()) if exists else {}
        return self._infos[ref.name]

    def check(self, request: GenerationRequest) -> None:
        """What the model cannot do, refused before queuing (the pipeline checks again when it runs)."""
        info = self.info(request.model)
        check_request(Capabilities.from_info(info), request)
        samplers = info.get("samplers")
        if samplers and request.sampler.value not in samplers:
            raise RequestError(f"sampler: this model supports {', '.join(samplers)} (got {request.sampler.value!r})")
        limit = info.get("max_size")
        config = info.get("config") or {}
        # The pipeline needs sizes divisible by the VAE's and the UNet's downsampling (as latent_shape).
        depth = len(config.get("vae", {}).get("block_out_channels", [0])) + len(
            config.get("unet", {}).get("block_out_channels", [0])) - 2
        step = 2 ** depth if config else 8
        for field in ("width", "height"):
            value = getattr(request, field)
            if value is None:
                continue
            if value % step:
                raise RequestError(f"{field}: must be a multiple of {step} for this model (got {value})")
            if limit and value > limit:
                raise RequestError(f"{field}: at most {limit} for this model (got {value})")

    @cached_property
    def models(self) -> list[ModelRef]:
        return list(self._refs.values())
