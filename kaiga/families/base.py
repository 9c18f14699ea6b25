"""The family contract: what every generative family (diffusion, gan, vae, transformer) provides.

A family's model is a `torch.nn.Module` subclass of `ImageGenerator` with:
  - a typed, frozen config dataclass (`config_class`) that fully describes its architecture;
  - `create(config)` to build it untrained, `loss(batch)` for the shared training loop;
  - `sample(request, seeds, ...)` → one PIL image per seed, the same image for the same seed
    whatever the batch size;
  - `save(folder)` / `load(folder)`: weights in safetensors, config and capabilities in `kaiga.json`,
    the tokenizer in the transformers format beside them (no pickle anywhere);
  - `explain(prompt, seed)`: frames showing how the family builds an image, for `kaiga explain`;
  - its capabilities (sizes, samplers, edits, options: `kaiga.capabilities`) in `info`, saved in
    `kaiga.json`, which the Studio and the server check every request against;
  - for training, the hooks the shared dataset task (`kaiga.train.family_task.FamilyTask`) calls:
    `set_stage` (families trained in stages), `cached_inputs` (per-image tensors computed once that
    stand in for `pixels`, such as diffusion's latents), `training_grid` and `finish_training`.
    Training lives above the families: `kaiga.train` imports this contract, never the reverse.

A batch for `loss` is a dict with `pixels` [B, 3, H, W] in [-1, 1], `input_ids` [B, T] and a CPU
`generator`, so one dataset task (`kaiga.train.family_task.FamilyTask`) trains every family on the
same Accelerate loop. `forward(batch)` is `loss(batch)`: the loop calls the module.

The diffusion family's `LatentDiffusion` overrides `save`/`load` to keep the diffusers folder layout,
so real Stable Diffusion folders load through it.

Example:
    >>> from kaiga.families.vae.model import ConditionalVAE
    >>> m = ConditionalVAE.create(ConditionalVAE.config_class.tiny())
    >>> m.info["family"], m.info["native_size"]
    ('vae', 64)
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Callable, ClassVar

import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from kaiga.capabilities import Capabilities, check_request
from kaiga.data.captions import vocabulary_words
from kaiga.prompt_syntax import is_composed, vector_terms
from kaiga.request import GenerationRequest, RequestError
from kaiga.text.prompt_weights import plain_text
from kaiga.text.tokenizer import build_word_tokenizer

KAIGA_JSON = "kaiga.json"
WEIGHTS = "model.safetensors"
TOKENIZER_DIR = "tokenizer"

OnStep = Callable[[int, int], None]


def config_from_dict(cls, data: dict):
    """Rebuild a (nested, frozen) config dataclass from `asdict` output; lists become tuples."""
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        v = data[f.name]
        default = f.default_factory  # nested configs are fields with a default_factory
        if isinstance(v, dict) and callable(default) and is_dataclass(default()):
            v = config_from_dict(type(default()), v)
        elif isinstance(v, list):
            v = tuple(v)  # JSON has no tuples; frozen configs use them
        kwargs[f.name] = v
    return cls(**kwargs)


class ImageGenerator(torch.nn.Module):
    """Base class of the families' models; subclasses set `family`, `config_class` and the verbs."""

    family: ClassVar[str]
    config_class: ClassVar[type]
    request_options: ClassVar[tuple[str, ...]] = ()  # the request's family options (FAMILY_OPTIONS) it reads

    def __init__(self, config, tokenizer, info: dict | None = None):
        """`config` None: a model whose architecture came from elsewhere (a Stable Diffusion folder)."""
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        # Capabilities: the family's declaration, then what `info` (a kaiga.json) says, then derived keys.
        declared = {"family": self.family, "native_size": 64, "max_size": 64, "samplers": [], "edits": False,
                    "options": list(self.request_options)}
        self.info = {**declared, **(info or {})}
        self.info = {**Capabilities.from_info(self.info).to_info(), **self.info}
        if config is not None:  # as saved, when `info` comes from a kaiga.json; else the config's own fields
            self.info.setdefault("config", asdict(config))

    # --- construction and files ---------------------------------------------------------------
    @classmethod
    def create(cls, config=None, words: set[str] | None = None) -> "ImageGenerator":
        """An untrained model; the tokenizer's vocabulary is the scenes captions' (or `words`)."""
        config = config or cls.config_class()
        tokenizer = build_word_tokenizer(words or vocabulary_words(), max_length=cls.max_text_length(config))
        return cls(config, tokenizer)

    @classmethod
    def max_text_length(cls, config) -> int:
        return config.text.max_length

    def save(self, folder, dtype: torch.dtype | None = None) -> Path:
        """`model.safetensors` + `kaiga.json` + `tokenizer/`; `dtype=torch.float16` halves the size."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
                 for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS), metadata={"family": self.family})
        self.tokenizer.save_pretrained(folder / TOKENIZER_DIR)
        (folder / KAIGA_JSON).write_text(json.dumps(self.info, indent=2))
        return folder

    @classmethod
    def load(cls, folder, dtype: torch.dtype = torch.float32) -> "ImageGenerator":
        folder = Path(folder)
        info = json.loads((folder / KAIGA_JSON).read_text())
        if info.get("family") != cls.family:
            raise ValueError(f"{folder} holds a {info.get('family')!r} model, not {cls.family!r}")
        config = config_from_dict(cls.config_class, info["config"])
        tokenizer = AutoTokenizer.from_pretrained(folder / TOKENIZER_DIR, local_files_only=True)
        model = cls(config, tokenizer, {k: v for k, v in info.items() if k != "config"})
        state = load_file(str(folder / WEIGHTS))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        return model.to(dtype).eval()

    # --- verbs ----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """Token ids [N, T], padded to the text length; A1111's weighting syntax (`(red:1.3)`) is read as its
        plain text (these families have no per-token states to weigh)."""
        n = self.max_text_length(self.config)
        return self.tokenizer([plain_text(p) for p in prompts], padding="max_length", max_length=n, truncation=True,
                              return_tensors="pt").input_ids

    def conditioning(self, prompts: list[str], request: GenerationRequest | None = None) -> torch.Tensor:
        """The text vectors [N, D] the generator reads (`encode_text`), with the request's styles mixed in
        (kaiga/styles/mix.py: each styled prompt encoded, the vectors averaged by their shares). A composed
        prompt (`a AND b`, `a::2 b`, `[dog:cat:0.5]`) is the weighted sum of its texts' vectors
        (`kaiga.prompt_syntax.vector_terms`)."""
        if not any(is_composed(p) for p in prompts):
            return self._text_vectors(prompts, request)
        terms = [vector_terms(p) for p in prompts]
        texts = list(dict.fromkeys(text for ts in terms for text, _ in ts))
        rows = self._text_vectors(texts, request)
        return torch.stack([sum(w * rows[texts.index(text)] for text, w in ts) for ts in terms])

    def shaken(self, text: torch.Tensor, request: GenerationRequest | None, seeds: list[int] | None) -> torch.Tensor:
        """The text vectors [N, D] shaken by the request's `chaos`, image i by its seed's own noise
        (kaiga/families/chaos.py, `vector_strength`); as they are without."""
        if request is None or not request.chaos or seeds is None:
            return text
        from kaiga.families.chaos import chaos_noise, shake, vector_strength

        return shake(text, chaos_noise(seeds, tuple(text.shape[1:])), vector_strength(request.chaos))

    def _text_vectors(self, prompts: list[str], request: GenerationRequest | None) -> torch.Tensor:
        from kaiga.styles.mix import is_plain, mixed, resolve

        encode = lambda texts: self.encode_text(self.tokenize(texts))  # noqa: E731
        if request is None or is_plain(request.style, request.stylize):
            return encode(prompts)
        cond, _ = mixed(encode, prompts, request.negative_prompt, resolve(request.style), request.stylize)
        return cond

    def forward(self, batch: dict):
        return self.loss(batch)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """(scalar loss, dict of floats to log) for one batch (see the module docstring)."""
        raise NotImplementedError

    def sample(self, request: GenerationRequest, seeds: list[int], batch_size: int = 16,
               on_step: OnStep | None = None, prompts: list[str] | None = None) -> list[Image.Image]:
        """One native-size image per seed; `prompts` (one per seed) replaces `request.prompt`."""
        raise NotImplementedError

    def explain(self, prompt: str, seed: int) -> tuple[list[Image.Image], list[str]]:
        """Frames of how an image is built, each with a caption (for `kaiga explain`)."""
        raise NotImplementedError

    def edit(self, request: GenerationRequest, init: Image.Image, seeds: list[int], mask: Image.Image | None = None,
             batch_size: int = 16, on_step: OnStep | None = None) -> list[Image.Image]:
        """Image → image (inpainting with `mask`, white = repaint), for families whose capabilities say `edits`."""
        raise RequestError(f"init_image: image edits need a diffusion model; this is a {self.family} model")

    # --- training hooks (see the module docstring) ----------------------------------------------
    def cached_inputs(self, pixels: torch.Tensor, data: Path, cache_dir: Path | None) -> dict | None:
        """Per-image tensors [N, ...] computed once from uint8 `pixels` [N, 3, H, W], or None: batches use pixels."""
        return None

    @property
    def export_dtype(self) -> torch.dtype | None:
        """The dtype a trained model is saved in (None: as trained); fp16 halves the shipped size."""
        return torch.float16

    def finish_training(self, pixels: torch.Tensor) -> None:
        """Called once before a trained model is saved, with the first images of its data ([N, 3, H, W], [-1, 1])."""

    # --- helpers for the subclasses -------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        return Capabilities.from_info(self.info)

    def check_request(self, request: GenerationRequest) -> None:
        check_request(self.capabilities, request)


def prompt_batches(request: GenerationRequest, seeds: list[int], batch_size: int, prompts: list[str] | None):
    """(start, seeds, prompts) chunks of at most `batch_size`; prompts default to the request's."""
    if prompts is not None and len(prompts) != len(seeds):
        raise ValueError(f"one prompt per seed: got {len(prompts)} prompts for {len(seeds)} seeds")
    prompts = prompts or [request.prompt] * len(seeds)
    for start in range(0, len(seeds), batch_size):
        yield start, seeds[start:start + batch_size], prompts[start:start + batch_size]


def seeded_normal(seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """Noise [N, *shape], image i drawn from its own seed on the CPU (same on every device and batch)."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds])
