"""Faces in a user's images: found with OpenCV's Haar cascades, hidden with a strong Gaussian blur.

The cascades ship inside `opencv-python-headless` below version 5 (`cv2.data.haarcascades`; version 5
dropped them, hence the pin). A cascade slides a 24×24 window over the image at growing scales, so a
face smaller than that is never seen: small images (our 64² renders, thumbnails) are enlarged first,
so that a face of `MIN_FACE` pixels fills the window; large photos are shrunk (time grows with pixels). Two cascades
are run and their boxes merged: the frontal one (`haarcascade_frontalface_default`) and the profile
one on the image and its mirror (it only knows faces turned one way), because a missed face is the
costly error here; `MIN_NEIGHBOURS` keeps the false alarms on face-free scenes down (measured in
docs/trust/privacy.md).

Example:
    >>> from PIL import Image
    >>> detect_faces(Image.new("RGB", (64, 64), "white"))
    ()
    >>> blurred = blur_faces(Image.new("RGB", (64, 64), "white"), (Box(8, 8, 20, 20),))
    >>> blurred.size
    (64, 64)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

WINDOW = 24  # pixels: the Haar cascades' training window
MIN_FACE = 13  # pixels of the image: the smallest face looked for (smaller "faces" in 64² scenes were texture)
DETECT_SIDE = 256  # pixels: small images are enlarged to this shorter side before detection
MAX_DETECT_SIDE = 1024  # pixels: large photos are shrunk to this shorter side (faces under ~1/40 of it are lost)
MIN_NEIGHBOURS = 8  # overlapping detections a face needs (OpenCV's default 3 fires on textured scenes)
SCALE_STEP = 1.1  # growth of the window between scales
CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml")
PAD = 0.25  # each side of a box is widened by this fraction before blurring: hair, ears, chin
BLUR_FRACTION = 0.25  # Gaussian radius as a fraction of the padded box's longer side: nothing recognisable left


@dataclass(frozen=True)
class Box:
    """A face's box in the image's pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    def to_dict(self) -> dict:
        return asdict(self)

    def padded(self, width: int, height: int, pad: float = PAD) -> tuple[int, int, int, int]:
        """The box widened by `pad` on each side and clipped to the image, as (left, top, right, bottom).

        >>> Box(10, 10, 20, 20).padded(32, 32)
        (5, 5, 32, 32)
        """
        dx, dy = round(self.w * pad), round(self.h * pad)
        return max(0, self.x - dx), max(0, self.y - dy), min(width, self.x + self.w + dx), min(height,
                                                                                              self.y + self.h + dy)


@lru_cache(maxsize=None)
def _cascade(name: str):
    import cv2  # imported when faces are looked for, not when kaiga starts

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if cascade.empty():  # opencv 5 has no cascades: say so rather than find no face ever
        raise RuntimeError(f"OpenCV {cv2.__version__} has no {name}; install opencv-python-headless<5")
    return cascade


def _overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box: a profile box inside a frontal one is the same face."""
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    return 0.0 if w <= 0 or h <= 0 else w * h / min(a.w * a.h, b.w * b.h)


def detect_faces(image: Image.Image) -> tuple[Box, ...]:
    """The faces in `image` (any mode), as boxes in its own pixels, largest first."""
    import cv2

    gray = np.asarray(image.convert("L"))
    short = min(gray.shape)
    # Enlarge small images so that their faces reach the 24² window; shrink large ones (time grows with pixels).
    scale = DETECT_SIDE / short if short < DETECT_SIDE else min(1.0, MAX_DETECT_SIDE / short)
    if scale != 1:
        gray = cv2.resize(gray, None, fx=scale, fy=scale,
                          interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)  # the cascades were trained on contrast-normalised faces
    min_side = max(WINDOW, round(MIN_FACE * scale))
    found: list[Box] = []
    for name in CASCADES:
        flips = (False, True) if "profile" in name else (False,)
        for flip in flips:
            view = gray[:, ::-1].copy() if flip else gray
            boxes = _cascade(name).detectMultiScale(view, scaleFactor=SCALE_STEP, minNeighbors=MIN_NEIGHBOURS,
                                                    minSize=(min_side, min_side))
            for x, y, w, h in boxes if len(boxes) else ():
                if flip:
                    x = view.shape[1] - x - w
                box = Box(round(x / scale), round(y / scale), round(w / scale), round(h / scale))
                if all(_overlap(box, other) < 0.5 for other in found):
                    found.append(box)
    return tuple(sorted(found, key=lambda b: -b.w * b.h))


def blur_faces(image: Image.Image, boxes: tuple[Box, ...]) -> Image.Image:
    """A copy of `image` with each padded box replaced by a strong Gaussian blur of itself."""
    out = image.copy()
    for box in boxes:
        left, top, right, bottom = box.padded(*image.size)
        region = out.crop((left, top, right, bottom))
        radius = max(2.0, BLUR_FRACTION * max(right - left, bottom - top))
        # Twice: one Gaussian of this radius still leaves the darkest features (eyes, mouth) as smudges.
        region = region.filter(ImageFilter.GaussianBlur(radius)).filter(ImageFilter.GaussianBlur(radius))
        out.paste(region, (left, top))
    return out
