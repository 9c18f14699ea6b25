"""The dataset format `kaiga train` reads: a folder of images and a `metadata.jsonl`.

Each line of `metadata.jsonl` is `{"file_name": "00000.png", "text": "..." | ["...", ...]}`, the
convention of Hugging Face's imagefolder, so any user's folder of captioned images trains the same
way. Each line may also give the item's `"source"`, `"licence"` and `"consent"`, and a `lineage.json`
gives defaults for them all (kaiga/data/lineage.py). Scenes datasets add `"attributes"` (the exact ground
truth), the lineage of every item, and a `manifest.json` recording the source and licence of every asset used.

Example:
    >>> from pathlib import Path; import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = write_scenes(d, n=2, seed=0)
    >>> len(read_metadata(d))
    2
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kaiga.data.captions import canonical_caption, random_caption
from kaiga.data.lineage import SCENES_LINEAGE, Lineage, LineageError, dataset_default, parse
from kaiga.data.render import SPRITE_LICENCE, SPRITES, render
from kaiga.data.world import HOLD_OUT, Mix, sample_scene

METADATA = "metadata.jsonl"
MANIFEST = "manifest.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class Example:
    """One training example: where its image is and every caption of it."""

    path: Path
    captions: tuple[str, ...]
    attributes: dict | None = None
    lineage: Lineage = Lineage()  # source, licence, consent: the item's own, else the dataset's defaults


def scene_example(index: int, seed: int, split: str = "train", n_captions: int = 4, mix: Mix = Mix()):
    """Render example `index` of the stream `seed`: (image, captions, attribute dict).

    Each index has its own generator, so any slice of a dataset can be re-rendered alone.
    """
    rng = np.random.default_rng([seed, index])
    s = sample_scene(rng, split=split, mix=mix)
    image = render(s, rng)
    captions = [canonical_caption(s)] + [random_caption(s, rng) for _ in range(n_captions - 1)]
    return image, captions, s.to_dict()


def _render_and_save(job: tuple[Path, int, int, str, int, Mix]) -> str:
    """Render example `index` into `out` and return its metadata line (one unit of work for a worker)."""
    out, index, seed, split, n_captions, mix = job
    image, captions, attrs = scene_example(index, seed, split, n_captions, mix)
    name = f"{index:06d}.png"
    image.save(out / name)
    return json.dumps({"file_name": name, "text": captions, "attributes": attrs, **SCENES_LINEAGE.to_dict()}) + "\n"


def write_scenes(out: Path, n: int, seed: int = 0, split: str = "train", progress=None, n_captions: int = 4,
                 mix: Mix = Mix(), workers: int = 1) -> Path:
    """Render `n` scenes into `out` (images, metadata.jsonl, manifest.json); returns `out`.

    `workers` > 1 renders in that many processes; every example has its own generator
    (`scene_example`), so the folder is the same byte for byte whatever the number of workers.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = ((out, i, seed, split, n_captions, mix) for i in range(n))
    with open(out / METADATA, "w", encoding="utf-8") as meta, ExitStack() as stack:
        if workers > 1:
            import multiprocessing

            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(workers))
            lines = pool.imap(_render_and_save, jobs, chunksize=64)  # imap keeps the order of the jobs
        else:
            lines = map(_render_and_save, jobs)
        for line in lines:
            meta.write(line)
            if progress is not None:
                progress(1)
    manifest = {
        "generator": "kaiga scenes renderer",
        "seed": seed,
        "split": split,
        "count": n,
        "layouts": dict(zip(("single", "count", "pair"), mix.layouts)),
        "captions_per_image": n_captions,
        "held_out_pairs": {k: [list(p) for p in v] for k, v in HOLD_OUT.__dict__.items()},
        "assets": [
            {"object": obj, "emoji": ch, "unicode_name": name, **SPRITE_LICENCE}
            for obj, (ch, name) in SPRITES.items()
        ],
        "images_licence": "generated; same terms as the sprites (Apache-2.0)",
        "lineage": SCENES_LINEAGE.to_dict(),  # what every item's line says too
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out


class DatasetError(ValueError):
    """A training folder that cannot be read, with what to fix."""


def read_metadata(folder: Path) -> list[Example]:
    """Every example of a dataset folder, checked: each file exists and has at least one caption; each
    carries its lineage (what its line says, completed by the dataset's defaults)."""
    folder = Path(folder)
    meta = folder / METADATA
    if not meta.is_file():
        raise DatasetError(f"{folder} has no {METADATA}: write one line per image, "
                           '{"file_name": "a.png", "text": "a caption"}')
    try:
        default = dataset_default(folder)
    except LineageError as e:
        raise DatasetError(str(e)) from None
    examples = []
    for lineno, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            name, text = row["file_name"], row["text"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DatasetError(f"{meta}:{lineno}: needs file_name and text ({e})") from None
        path = (folder / name).resolve()
        if folder.resolve() not in path.parents or not path.is_file():
            raise DatasetError(f"{meta}:{lineno}: {name!r} is not a file inside {folder}")
        captions = (text,) if isinstance(text, str) else tuple(text)
        if not captions or not all(isinstance(c, str) and c.strip() for c in captions):
            raise DatasetError(f"{meta}:{lineno}: text must be a caption or a list of captions")
        try:
            lineage = parse(row, f"{meta}:{lineno}").over(default)
        except LineageError as e:
            raise DatasetError(str(e)) from None
        examples.append(Example(path, captions, row.get("attributes"), lineage))
    if not examples:
        raise DatasetError(f"{meta} lists no images")
    return examples


def load_image(path: Path, size: int) -> np.ndarray:
    """An image as float32 [3, size, size] in [-1, 1] (centre-cropped to a square, then resized)."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    side = min(w, h)
    im = im.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2))
    if im.size != (size, size):
        im = im.resize((size, size), Image.BICUBIC)
    return np.asarray(im, np.float32).transpose(2, 0, 1) / 127.5 - 1.0


def load_pixels(examples: list[Example], size: int):
    """Every image of a dataset as uint8 [N, 3, size, size] (4× smaller in memory than float)."""
    import torch  # the renderer and dataset writer do not need torch; training does

    out = torch.empty((len(examples), 3, size, size), dtype=torch.uint8)
    for i, ex in enumerate(examples):
        out[i] = torch.from_numpy(((load_image(ex.path, size) + 1) * 127.5).round().astype(np.uint8))
    return out


def to_float(pixels):
    """uint8 pixels -> float in [-1, 1]."""
    return pixels.float() / 127.5 - 1.0
