"""Procedural renderer of the scenes world: a `Scene` in, a 64×64 RGB image out, deterministically.

Hand-written because no library draws a world whose every attribute is known: backgrounds, weather
and time of day are numpy drawings, objects are Noto Color Emoji sprites recoloured by their
shading, styles are PIL filters applied last.

Example:
    >>> import numpy as np
    >>> from kaiga.data.world import sample_scene
    >>> img = render(sample_scene(np.random.default_rng(1)), np.random.default_rng(1))
    >>> img.size
    (64, 64)
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from kaiga.data.world import COLOUR_RGB, Layout, Scene

SIZE = 64
HORIZON = 36  # y of the horizon line; sky above, ground below
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_FONT_PX = 109  # the only pixel size the bitmap font has

# Object name -> (emoji, Unicode name). Provenance of every sprite goes into the dataset manifest.
SPRITES: dict[str, tuple[str, str]] = {
    "car": ("\U0001f697", "AUTOMOBILE"),
    "truck": ("\U0001f69a", "DELIVERY TRUCK"),
    "bicycle": ("\U0001f6b2", "BICYCLE"),
    "house": ("\U0001f3e0", "HOUSE BUILDING"),
    "tree": ("\U0001f333", "DECIDUOUS TREE"),
    "dog": ("\U0001f415", "DOG"),
    "cat": ("\U0001f408", "CAT"),
    "bird": ("\U0001f426", "BIRD"),
    "boat": ("\u26f5", "SAILBOAT"),
    "flower": ("\U0001f33c", "BLOSSOM"),
}
SPRITE_LICENCE = {
    "source": "Noto Color Emoji (Debian package fonts-noto-color-emoji)",
    "font_licence": "SIL OFL-1.1",
    "image_licence": "Apache-2.0",
}

SKY = {  # time -> (top colour, horizon colour)
    "day": ((80, 150, 230), (175, 215, 245)),
    "sunset": ((70, 55, 135), (250, 140, 70)),
    "night": ((8, 10, 30), (35, 40, 85)),
}
GROUND_LIGHT = {"day": 1.0, "sunset": 0.8, "night": 0.4}
OBJECT_LIGHT = {"day": 1.0, "sunset": 0.9, "night": 0.7}


class FontMissingError(RuntimeError):
    """The emoji font is not installed."""


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    if not EMOJI_FONT.exists():
        raise FontMissingError(
            f"{EMOJI_FONT} not found: install it with `apt-get install fonts-noto-color-emoji`"
        )
    return ImageFont.truetype(str(EMOJI_FONT), EMOJI_FONT_PX)


@lru_cache(maxsize=None)
def _glyph(name: str) -> np.ndarray:
    """The sprite's RGBA pixels at the font's native size, cropped to its bounding box."""
    im = Image.new("RGBA", (140, 130), (0, 0, 0, 0))
    ImageDraw.Draw(im).text((0, 0), SPRITES[name][0], font=_font(), embedded_color=True)
    return np.asarray(im.crop(im.getbbox()), dtype=np.float32) / 255.0


@lru_cache(maxsize=2048)
def sprite(name: str, colour: str, size: int) -> Image.Image:
    """The object recoloured to `colour`, fitted in a size×size box (RGBA).

    Recolouring keeps the glyph's shading: luminance around its mean modulates the target colour,
    and near-black outlines stay dark so the shape remains readable at 64 px.
    """
    g = _glyph(name)
    rgb, alpha = g[..., :3], g[..., 3:]
    lum = (rgb @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    mean = float((lum * alpha).sum() / max(alpha.sum(), 1e-6))
    shade = np.clip(0.8 + 0.9 * (lum - mean), 0.35, 1.2)
    target = np.array(COLOUR_RGB[colour], np.float32) / 255.0
    out = np.clip(target * shade, 0, 1)
    if colour == "black":  # lift shading so a black object is not a flat hole
        out = np.clip(0.08 + 0.35 * shade * np.ones(3, np.float32) * 0.6, 0, 1)
    outline = lum < 0.12
    out = np.where(outline, rgb * 0.5, out)
    im = Image.fromarray((np.concatenate([out, alpha], -1) * 255).astype(np.uint8), "RGBA")
    w, h = im.size
    scale = size / max(w, h)
    return im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)


def _vertical_gradient(top, bottom, height: int) -> np.ndarray:
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    return (1 - t) * np.array(top, np.float32) + t * np.array(bottom, np.float32)


def _background(s: Scene, rng: np.random.Generator) -> np.ndarray:
    """Sky, scenery and ground as float RGB in [0, 255], shape [H, W, 3]."""
    img = np.zeros((SIZE, SIZE, 3), np.float32)
    top, low = SKY[s.time]
    img[:HORIZON] = _vertical_gradient(top, low, HORIZON)
    if s.time == "night":  # stars and a moon
        ys, xs = rng.integers(0, HORIZON - 6, 12), rng.integers(0, SIZE, 12)
        img[ys, xs] = 230
        mx = int(rng.integers(8, 56))
        yy, xx = np.mgrid[:SIZE, :SIZE]
        img[(yy - 7) ** 2 + (xx - mx) ** 2 <= 9] = (240, 240, 210)
    elif s.time == "day" and s.weather == "clear":
        sx = int(rng.integers(6, 58))
        yy, xx = np.mgrid[:SIZE, :SIZE]
        img[(yy - 7) ** 2 + (xx - sx) ** 2 <= 12] = (255, 240, 120)
    elif s.time == "sunset":
        sx = int(rng.integers(10, 54))
        yy, xx = np.mgrid[:SIZE, :SIZE]
        img[((yy - HORIZON + 2) ** 2 + (xx - sx) ** 2 <= 30) & (yy < HORIZON)] = (255, 110, 40)

    ground = SIZE - HORIZON
    light = GROUND_LIGHT[s.time]
    yy, xx = np.mgrid[:SIZE, :SIZE]
    if s.scene == "city":
        x = 0
        while x < SIZE:  # building silhouettes with windows
            w, h = int(rng.integers(7, 13)), int(rng.integers(10, 28))
            grey = float(rng.integers(90, 150))
            img[HORIZON - h : HORIZON, x : x + w] = (grey * 0.9, grey * 0.9, grey)
            for wy in range(HORIZON - h + 2, HORIZON - 2, 4):
                for wx in range(x + 2, min(x + w - 1, SIZE), 3):
                    lit = (255, 220, 100) if s.time == "night" else (200, 220, 240)
                    img[wy, wx] = lit
            x += w + int(rng.integers(0, 3))
        img[HORIZON:] = (85, 85, 90)
        img[HORIZON + ground // 2, ::6] = (230, 230, 230)
        img[HORIZON + ground // 2, 1::6] = (230, 230, 230)
    elif s.scene == "forest":
        img[HORIZON:] = _vertical_gradient((40, 100, 40), (20, 70, 25), ground)
        for cx in range(-2, SIZE + 4, 7):  # conifers along the horizon
            h = int(rng.integers(12, 22))
            cx += int(rng.integers(-2, 3))
            for dy in range(h):
                half = (dy * 5) // h + 1
                y = HORIZON - h + dy + 2
                img[y, max(cx - half, 0) : max(cx + half, 0)] = (15, 75 + dy, 30)
    elif s.scene == "beach":
        sea_end = HORIZON + 8
        img[HORIZON:sea_end] = _vertical_gradient((30, 90, 170), (60, 150, 200), sea_end - HORIZON)
        img[sea_end:] = _vertical_gradient((235, 215, 160), (220, 195, 140), SIZE - sea_end)
        img[sea_end, :] = (245, 245, 245)  # surf line
    elif s.scene == "desert":
        img[HORIZON:] = _vertical_gradient((230, 185, 115), (205, 150, 85), ground)
        phase = rng.uniform(0, 6.28)
        dune = HORIZON + 8 + 3 * np.sin(xx[0] / 7 + phase)
        img[(yy > dune[None, :]) & (yy < dune[None, :] + 2)] = (190, 135, 75)
        cx = int(rng.integers(4, 60))
        img[HORIZON - 7 : HORIZON + 2, cx : cx + 2] = (50, 130, 60)  # a cactus
        img[HORIZON - 4, cx - 2 : cx + 4] = (50, 130, 60)
    elif s.scene == "mountains":
        img[HORIZON:] = _vertical_gradient((110, 120, 100), (80, 95, 75), ground)
        for _ in range(3):
            px, ph = int(rng.integers(0, SIZE)), int(rng.integers(16, 28))
            mask = (yy < HORIZON) & (yy > HORIZON - ph + np.abs(xx - px) * 0.9)
            img[mask] = (105, 100, 110)
            cap = mask & (yy < HORIZON - ph + 6 + np.abs(xx - px) * 0.9)
            img[cap] = (240, 240, 245)
    elif s.scene == "countryside":
        phase = rng.uniform(0, 6.28)
        hill = HORIZON - 3 + 3 * np.sin(xx[0] / 9 + phase)
        img[yy >= hill[None, :]] = (120, 190, 80)
        img[HORIZON + 4 :] = _vertical_gradient((110, 185, 75), (80, 160, 60), SIZE - HORIZON - 4)
        img[HORIZON + 6 : HORIZON + 7, :] = (130, 90, 50)  # fence rail
        img[HORIZON + 3 : HORIZON + 9, ::5] = (130, 90, 50)  # fence posts
    img[HORIZON:] *= light
    return img


def _place(s: Scene, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(centre x, bottom y, size) for each object, with a little jitter."""
    j = lambda k=3: int(rng.integers(-k, k + 1))  # noqa: E731
    if s.layout is Layout.SINGLE:
        size = int(rng.integers(28, 35))
        return [(32 + j(), 54 + j(2), size)]
    if s.layout is Layout.COUNT:
        n = len(s.objects)
        xs = (19, 45) if n == 2 else (11, 32, 53)
        size = 22 if n == 2 else 18
        return [(x + j(1), 52 + j(2), size) for x in xs]
    size = 22
    rel = s.relation
    # objects[0] is <relation> objects[1]
    if rel in ("left of", "right of"):
        left, right = (16 + j(2), 52 + j(2), size), (48 + j(2), 52 + j(2), size)
        return [left, right] if rel == "left of" else [right, left]
    upper, lower = (32 + j(3), 28 + j(1), size - 2), (32 + j(3), 60, size - 2)
    return [upper, lower] if rel == "above" else [lower, upper]


def _weather(img: np.ndarray, s: Scene, rng: np.random.Generator, layer: str) -> np.ndarray:
    """Weather over the background (`layer`="back") or over everything (`layer`="front")."""
    if s.weather == "fog":
        amount = 0.55 if layer == "back" else 0.15
        return img * (1 - amount) + np.array((200, 202, 208), np.float32) * amount
    if s.weather == "snow" and layer == "back":
        img[HORIZON:] = img[HORIZON:] * 0.35 + 235 * 0.65
        img[:HORIZON] = img[:HORIZON] * 0.7 + 170 * 0.3
    if s.weather == "rain" and layer == "back":
        img[:HORIZON] = img[:HORIZON] * 0.5 + np.array((110, 115, 125), np.float32) * 0.5
        img[HORIZON:] *= 0.8
    if layer == "front" and s.weather == "snow":
        n = 70
        ys, xs = rng.integers(0, SIZE, n), rng.integers(0, SIZE, n)
        img[ys, xs] = 250
    if layer == "front" and s.weather == "rain":
        for _ in range(45):
            x, y = int(rng.integers(0, SIZE)), int(rng.integers(0, SIZE))
            for k in range(4):  # a short diagonal streak
                if 0 <= y + k < SIZE and 0 <= x - k // 2 < SIZE:
                    img[y + k, x - k // 2] = img[y + k, x - k // 2] * 0.4 + np.array((170, 185, 215)) * 0.6
    return img


def _style(im: Image.Image, style: str, rng: np.random.Generator) -> Image.Image:
    """The style as a filter over the finished picture."""
    if style == "plain":
        return im
    a = np.asarray(im, np.float32)
    if style == "watercolor":
        soft = np.asarray(im.filter(ImageFilter.GaussianBlur(1.2)), np.float32)
        edges = np.asarray(im.filter(ImageFilter.FIND_EDGES).convert("L"), np.float32)[..., None]
        paper = rng.normal(0, 6, (SIZE, SIZE, 1)).astype(np.float32)
        out = soft * 0.75 + 255 * 0.25 - edges * 0.25 + paper
        return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    if style == "pixel art":
        small = im.resize((16, 16), Image.BOX).quantize(12, dither=Image.Dither.NONE).convert("RGB")
        return small.resize((SIZE, SIZE), Image.NEAREST)
    if style == "sketch":
        grey = ImageOps.grayscale(im)
        edges = np.asarray(grey.filter(ImageFilter.FIND_EDGES), np.float32)[..., None]
        wash = a * 0.3 + 255 * 0.7
        lines = np.clip(edges * 2.5, 0, 255)
        hatch = ((np.add.outer(np.arange(SIZE), np.arange(SIZE)) % 4) == 0)[..., None] * 12.0
        return Image.fromarray(np.clip(wash - lines - hatch, 0, 255).astype(np.uint8))
    if style == "neon":
        edges = np.asarray(im.filter(ImageFilter.FIND_EDGES), np.float32)
        hsv = np.asarray(im.convert("HSV"), np.float32).copy()
        hsv[..., 1] = 255
        hsv[..., 2] = 255
        vivid = np.asarray(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"), np.float32)
        glow_mask = np.clip(edges.max(-1, keepdims=True) / 60, 0, 1)
        glow = np.asarray(
            Image.fromarray((vivid * glow_mask).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.0)),
            np.float32,
        )
        out = a * 0.22 + vivid * glow_mask * 0.9 + glow * 0.8 + np.array((10, 0, 25), np.float32)
        return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    if style == "vintage":
        grey = a @ np.array([0.299, 0.587, 0.114], np.float32)
        sepia = grey[..., None] * np.array((1.07, 0.87, 0.62), np.float32)
        yy, xx = np.mgrid[:SIZE, :SIZE]
        vignette = 1 - 0.55 * (((yy - 32) ** 2 + (xx - 32) ** 2) / (2 * 32**2))[..., None]
        grain = rng.normal(0, 7, (SIZE, SIZE, 1)).astype(np.float32)
        out = (a * 0.45 + sepia * 0.55) * vignette * 0.95 + 12 + grain
        return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    raise ValueError(f"unknown style {style!r}")


def render(s: Scene, rng: np.random.Generator) -> Image.Image:
    """Draw `s` as a 64×64 RGB image; the same scene and rng state give the same pixels."""
    back = _weather(_background(s, rng), s, rng, "back")
    im = Image.fromarray(np.clip(back, 0, 255).astype(np.uint8)).convert("RGBA")
    light = OBJECT_LIGHT[s.time]
    for obj, (cx, bottom, size) in zip(s.objects, _place(s, rng)):
        sp = sprite(obj.name, obj.colour, size)
        if light < 1:
            r, g, b, al = sp.split()
            sp = Image.merge("RGBA", [ch.point(lambda v: int(v * light)) for ch in (r, g, b)] + [al])
        w, h = sp.size
        im.alpha_composite(sp, (int(cx - w / 2), int(bottom - h)))
    front = _weather(np.asarray(im.convert("RGB"), np.float32), s, rng, "front")
    out = Image.fromarray(np.clip(front, 0, 255).astype(np.uint8))
    return _style(out, s.style, rng)
