"""The opt-out list: images their owners asked to keep out of training, matched by perceptual hash.

A list is a text file, one entry a line: a 64-hex-digit pHash (256 bits: `imagehash.phash` with a 16×16
DCT block; the default 8×8 block's 64 bits cannot tell scenes renders apart from their copies), or the
path of an image to hash (relative to the list's folder); `#` starts a comment. The default list is
`$KAIGA_HOME/opt-out.txt`; `kaiga data opt-out IMAGE...` appends to it. A dataset item matches when its
pHash is within `MAX_DISTANCE` bits of an entry, so a re-encoded, resized or upscaled copy still
matches (bench/phash_optout.py measures the threshold; docs/trust/lineage.md has the figures).

pHash (imagehash, BSD-2-Clause) and not an exact file hash: a copy saved as JPEG or scaled has other
bytes but the same low frequencies, which is what the hash keeps.

Example:
    >>> from kaiga.data.dataset import scene_example
    >>> im, _, _ = scene_example(0, seed=0)
    >>> opt = OptOutList([image_hash(im)])
    >>> opt.matches(image_hash(im.resize((256, 256)))), opt.matches(image_hash(scene_example(1, seed=0)[0]))
    (True, False)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from kaiga.paths import model_home

OPT_OUT_FILE = "opt-out.txt"
HASH_SIZE = 16  # side of the DCT block the hash keeps: 16² = 256 bits
HASH_BITS = HASH_SIZE * HASH_SIZE
HEX_DIGITS = HASH_BITS // 4
MAX_DISTANCE = 20  # bits (of 256): above every copy but JPEG q50 / noise outliers, below the nearest two different renders (22)


class OptOutError(ValueError):
    """An opt-out list that cannot be read, naming the file and line."""


def default_list_path() -> Path:
    """`$KAIGA_HOME/opt-out.txt`, the list every training run honours unless given another."""
    return model_home() / OPT_OUT_FILE


def image_hash(image: Image.Image | str | os.PathLike) -> int:
    """The 256-bit pHash of an image (a PIL image or a path) as an int.

    >>> image_hash(Image.new("RGB", (64, 64), "white")).bit_length() <= HASH_BITS
    True
    """
    if not isinstance(image, Image.Image):
        with Image.open(image) as im:
            return image_hash(im.convert("RGB"))
    bits = imagehash.phash(image.convert("RGB"), hash_size=HASH_SIZE).hash.flatten()  # [256] bools, row-major
    return int("".join("1" if b else "0" for b in bits), 2)


def hex_hash(h: int) -> str:
    """A hash as the 64 hex digits the list file holds.

    >>> hex_hash(255)[-4:], len(hex_hash(255))
    ('00ff', 64)
    """
    return f"{h:0{HEX_DIGITS}x}"


def distance(a: int, b: int) -> int:
    """Hamming distance between two hashes, in bits.

    >>> distance(0b1011, 0b0001)
    2
    """
    return (a ^ b).bit_count()


@dataclass
class OptOutList:
    """The hashes of opted-out images; `matches` says whether a hash is one of them."""

    hashes: list[int] = field(default_factory=list)
    max_distance: int = MAX_DISTANCE
    path: Path | None = None  # where it was read from, for messages

    @classmethod
    def read(cls, path: Path, required: bool = True) -> OptOutList:
        """Parse a list file; a missing default list (`required=False`) is an empty list."""
        path = Path(path)
        if not path.exists() and not required:
            return cls(path=path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise OptOutError(f"--opt-out: cannot read {path} ({getattr(e, 'strerror', None) or e})") from None
        hashes = []
        for lineno, raw in enumerate(lines, 1):
            entry = raw.split("#", 1)[0].strip()
            if not entry:
                continue
            if len(entry) == HEX_DIGITS and all(c in "0123456789abcdefABCDEF" for c in entry):
                hashes.append(int(entry, 16))
                continue
            image = (path.parent / entry) if not Path(entry).is_absolute() else Path(entry)
            try:
                hashes.append(image_hash(image))
            except (OSError, ValueError) as e:
                raise OptOutError(f"{path}:{lineno}: {entry!r} is neither a 64-hex-digit pHash nor an image "
                                  f"that opens ({e})") from None
        return cls(hashes, path=path)

    def __len__(self) -> int:
        return len(self.hashes)

    def matches(self, h: int) -> bool:
        return any(distance(h, o) <= self.max_distance for o in self.hashes)

    def matching(self, hashes: list[int]) -> np.ndarray:
        """Which of `hashes` match an entry: a bool array (numpy over all pairs at once, fast for big datasets)."""
        if not self.hashes or not hashes:
            return np.zeros(len(hashes), bool)
        return min_distances(hashes, self.hashes) <= self.max_distance


def min_distances(hashes: list[int], others: list[int]) -> np.ndarray:
    """For each of `hashes`, the smallest Hamming distance to any of `others` (int array).

    >>> min_distances([0, 3], [1, 15]).tolist()
    [1, 1]
    """
    a, b = as_bytes(hashes), as_bytes(others)  # [N, 32], [M, 32]
    out = np.empty(len(a), np.int64)
    for start in range(0, len(a), 4096):  # [chunk, M, 32] at a time: bounded memory for large datasets
        x = np.bitwise_xor(a[start:start + 4096, None, :], b[None, :, :])
        out[start:start + 4096] = np.unpackbits(x, axis=-1).sum(-1).min(axis=1)
    return out


def as_bytes(hashes: list[int]) -> np.ndarray:
    """Hashes as uint8 [N, 32], for numpy's bit counting."""
    raw = b"".join(h.to_bytes(HASH_BITS // 8, "big") for h in hashes)
    return np.frombuffer(raw, np.uint8).reshape(len(hashes), HASH_BITS // 8)


def add_to_list(path: Path, images: list[Path]) -> list[str]:
    """Append the pHash of each image to the list at `path` (made if missing), each with its file name as a
    comment; returns the hex hashes added. The images themselves are not kept: a hash cannot be turned back
    into the picture."""
    entries = [(hex_hash(image_hash(p)), Path(p).name) for p in images]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for h, name in entries:
            f.write(f"{h}  # {name}\n")
    return [h for h, _ in entries]
