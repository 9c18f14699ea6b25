"""Textual inversion embeddings: a new word whose input vector alone was learned (Gal et al. 2022), as files.

- Files, `.safetensors` only, in AUTOMATIC1111's layout (`emb_params`: [vectors, D]) with kaiga's metadata
  (the trigger word, the base model by hash, the data's card); a file in diffusers' layout (one key, the
  placeholder token, [D] or [vectors, D]) reads too. A pickle (`.pt`, `.bin`) is refused, as every model file is.
- Names: as in AUTOMATIC1111, a file's stem is its trigger word, and a prompt that has the word uses it:
  `$KAIGA_HOME/embeddings/sks-toy.safetensors` is drawn by "a photo of sks-toy on the beach". A word the text
  encoder already knows cannot be a trigger (its own meaning would win): trigger words are made up.
- Which models: those with the pretrained, frozen text encoder (`kaiga.text.frozen_encoder`, v6 on), whose
  WordPiece tokenizer takes a new word as one token; the encoder gives that token the file's vector
  (`FrozenTextEncoder.add_vectors`). A file made for another encoder (CLIP's 768-d, SDXL's two) is refused,
  saying the widths. Single-vector embeddings only, so far (what `kaiga finetune` makes).

Hand-written: diffusers' `load_textual_inversion` needs a CLIP tokenizer and text model; ours is BERT's.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> path = save_embedding(torch.zeros(1, 384), Path(tempfile.mkdtemp()) / "sks-toy.safetensors", {"base": {}})
    >>> read_embedding(path).shape
    torch.Size([1, 384])
    >>> check_trigger("sks-toy"), embedding_info(path)["trigger"]
    ('sks-toy', 'sks-toy')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from kaiga.finetune.lora import file_hash
from kaiga.paths import model_home
from kaiga.request import RequestError

A1111_KEY = "emb_params"
TRIGGER = re.compile(r"^[a-z0-9][a-z0-9_-]{1,47}$")


class EmbeddingError(RequestError):
    """An embedding file that cannot be read or used with this model; the message names it and why."""


def embeddings_dir() -> Path:
    return model_home() / "embeddings"


def check_trigger(name: str) -> str:
    """`name` as a trigger word (lower case, letters, digits, - and _, 2-48 long); EmbeddingError else."""
    if not TRIGGER.match(name):
        raise EmbeddingError(f"embedding: a trigger word is 2-48 lower-case letters, digits, - or _, beginning with "
                             f"a letter or digit (got {name!r})")
    return name


def save_embedding(vectors: torch.Tensor, path: Path, metadata: dict) -> Path:
    """Write `vectors` [K, D] in AUTOMATIC1111's layout; `metadata` (kaiga's) beside the trigger, the file's stem."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"method": "textual-inversion", "trigger": path.stem, "vectors": int(vectors.shape[0]),
            "dim": int(vectors.shape[1]), **metadata}
    save_file({A1111_KEY: vectors.detach().float().cpu().contiguous()}, str(path), metadata={"kaiga": json.dumps(info)})
    return path


def embedding_info(path) -> dict:
    """What a kaiga embedding file says of itself; {} for a file from elsewhere."""
    with safe_open(str(path), "pt") as f:
        return json.loads((f.metadata() or {}).get("kaiga", "{}"))


def read_embedding(path) -> torch.Tensor:
    """The vectors [K, D] of an embedding file in AUTOMATIC1111's or diffusers' layout; EmbeddingError else."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise EmbeddingError(f"embedding: {path.name}: only .safetensors are read (a pickle can run code when opened)")
    try:
        tensors = load_file(str(path))
    except Exception as e:
        raise EmbeddingError(f"embedding: {path}: not a readable .safetensors file ({e})") from None
    if A1111_KEY in tensors:
        vectors = tensors[A1111_KEY]
    elif len(tensors) == 1:  # diffusers' learned_embeds: {placeholder token: vectors}
        vectors = next(iter(tensors.values()))
    else:  # SDXL's clip_l + clip_g, or not an embedding at all
        raise EmbeddingError(f"embedding: {path.name}: holds {', '.join(sorted(tensors))}, not one text encoder's "
                             f"vectors (kaiga reads {A1111_KEY!r} or a single key)")
    vectors = vectors[None] if vectors.dim() == 1 else vectors
    if vectors.dim() != 2:
        raise EmbeddingError(f"embedding: {path.name}: vectors of shape {list(vectors.shape)}, not [vectors, width]")
    return vectors.float()


def list_embeddings() -> list[tuple[Path, dict]]:
    """The embedding files in $KAIGA_HOME/embeddings with what each says of itself ({} when it says nothing)."""
    folder = embeddings_dir()
    found = []
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        try:
            found.append((path, embedding_info(path)))
        except Exception:  # listed, not fatal: using it says why
            found.append((path, {}))
    return found


@dataclass(frozen=True)
class AppliedEmbedding:
    name: str
    hash: str

    def record(self) -> dict:
        return {"name": self.name, "hash": self.hash}


def supports_embeddings(model) -> bool:
    """Whether the model's text encoder takes new words' vectors (the pretrained, frozen one)."""
    return hasattr(getattr(model, "text_encoder", None), "add_vectors")


def words_of(texts: list[str]) -> set[str]:
    return {w for t in texts for w in re.findall(r"[a-z0-9][a-z0-9_-]*", t.lower())}


def add_word(model, trigger: str, vectors: torch.Tensor, trainable: bool = False) -> None:
    """Teach the model's tokenizer `trigger` as one new token whose input vector is `vectors` [1, D]."""
    encoder, tokenizer = model.text_encoder, model.tokenizer
    width = int(encoder.config.hidden_size)
    if vectors.shape[1] != width:
        raise EmbeddingError(f"embedding: {trigger}: vectors {vectors.shape[1]} wide, made for another text encoder; "
                             f"this model's is {width} wide")
    if vectors.shape[0] != 1:
        raise EmbeddingError(f"embedding: {trigger}: {vectors.shape[0]} vectors; kaiga reads single-vector "
                             f"embeddings so far")
    if tokenizer.tokenize(trigger) == [trigger] and trigger in tokenizer.get_vocab():
        raise EmbeddingError(f"embedding: {trigger!r} is a word the text encoder knows; a trigger word is made up "
                             f"(sks-toy, my-style) so that its own meaning does not compete")
    tokenizer.add_tokens([trigger])
    [token_id] = tokenizer.convert_tokens_to_ids([trigger])
    [given] = encoder.add_vectors(vectors.to(encoder.model.device), trainable=trainable)
    if token_id != given:  # the tokenizer had added words the encoder does not know of
        raise EmbeddingError(f"embedding: {trigger}: the tokenizer gave id {token_id}, the encoder expected {given}")


def apply_embeddings(model, texts: list[str]) -> list[AppliedEmbedding]:
    """Every embedding in $KAIGA_HOME/embeddings whose trigger word appears in `texts`, taught to the model (once
    per model and file) — what the record lists. A model whose text encoder cannot take new words uses none."""
    folder = embeddings_dir()
    if not folder.is_dir() or not supports_embeddings(model):
        return []
    wanted = words_of(texts)
    taught = model.__dict__.setdefault("_embeddings", {})  # trigger -> hash of the file taught
    used = []
    for path in sorted(folder.glob("*.safetensors")):
        name = path.stem.lower()
        if name not in wanted:
            continue
        digest = file_hash(path)
        if name not in taught:
            add_word(model, check_trigger(name), read_embedding(path))
            taught[name] = digest
        elif taught[name] != digest:
            raise EmbeddingError(f"embedding: {path.name} changed since this model loaded it; restart to use the "
                                 f"new one")
        used.append(AppliedEmbedding(name, digest))
    return used
