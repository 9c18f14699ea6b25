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


def _grid(k: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) of every pixel's centre in 64-pixel units: at k=1 exactly the integer pixel indices."""
    c = (np.arange(SIZE * k, dtype=np.float64) + 0.5) / k - 0.5
    return np.meshgrid(c, c, indexing="ij")


def _blocks(ys, xs, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Fancy indices of the k×k blocks that 64-unit pixels (ys, xs) cover at scale k."""
    ys, xs, d = np.asarray(ys), np.asarray(xs), np.arange(k)
    return (ys[..., None, None] * k + d[:, None]), (xs[..., None, None] * k + d[None, :])


def _every(step: int, offsets: tuple[int, ...], k: int) -> np.ndarray:
    """Columns whose 64-unit index modulo `step` is one of `offsets` (dashes, fence posts)."""
    return np.isin((np.arange(SIZE * k) // k) % step, offsets)


def _background(s: Scene, rng: np.random.Generator, k: int = 1) -> np.ndarray:
    """Sky, scenery and ground as float RGB in [0, 255], shape [64k, 64k, 3].

    Every random draw is made in 64-pixel units and in the same order at every scale, so a scene
    drawn at k=4 is the k=1 picture with finer edges, not a different picture.
    """
    S, H = SIZE * k, HORIZON * k
    img = np.zeros((S, S, 3), np.float32)
    top, low = SKY[s.time]
    img[:H] = _vertical_gradient(top, low, H)
    yy, xx = _grid(k)
    if s.time == "night":  # stars and a moon
        ys, xs = rng.integers(0, HORIZON - 6, 12), rng.integers(0, SIZE, 12)
        img[_blocks(ys, xs, k)] = 230
        mx = int(rng.integers(8, 56))
        img[(yy - 7) ** 2 + (xx - mx) ** 2 <= 9] = (240, 240, 210)
    elif s.time == "day" and s.weather == "clear":
        sx = int(rng.integers(6, 58))
        img[(yy - 7) ** 2 + (xx - sx) ** 2 <= 12] = (255, 240, 120)
    elif s.time == "sunset":
        sx = int(rng.integers(10, 54))
        img[((yy - HORIZON + 2) ** 2 + (xx - sx) ** 2 <= 30) & (yy < HORIZON)] = (255, 110, 40)

    ground = SIZE - HORIZON
    light = GROUND_LIGHT[s.time]
    if s.scene == "city":
        x = 0
        while x < SIZE:  # building silhouettes with windows
            w, h = int(rng.integers(7, 13)), int(rng.integers(10, 28))
            grey = float(rng.integers(90, 150))
            img[H - h * k : H, x * k : (x + w) * k] = (grey * 0.9, grey * 0.9, grey)
            for wy in range(HORIZON - h + 2, HORIZON - 2, 4):
                for wx in range(x + 2, min(x + w - 1, SIZE), 3):
                    lit = (255, 220, 100) if s.time == "night" else (200, 220, 240)
                    img[wy * k : (wy + 1) * k, wx * k : (wx + 1) * k] = lit
            x += w + int(rng.integers(0, 3))
        img[H:] = (85, 85, 90)
        road = (HORIZON + ground // 2) * k
        img[road : road + k, _every(6, (0, 1), k)] = (230, 230, 230)
    elif s.scene == "forest":
        img[H:] = _vertical_gradient((40, 100, 40), (20, 70, 25), ground * k)
        for cx in range(-2, SIZE + 4, 7):  # conifers along the horizon
            h = int(rng.integers(12, 22))
            cx += int(rng.integers(-2, 3))
            for dy in range(h):
                half = (dy * 5) // h + 1
                y = HORIZON - h + dy + 2
                img[y * k : (y + 1) * k, max(cx - half, 0) * k : max(cx + half, 0) * k] = (15, 75 + dy, 30)
    elif s.scene == "beach":
        sea_end = HORIZON + 8
        img[H : sea_end * k] = _vertical_gradient((30, 90, 170), (60, 150, 200), (sea_end - HORIZON) * k)
        img[sea_end * k :] = _vertical_gradient((235, 215, 160), (220, 195, 140), (SIZE - sea_end) * k)
        img[sea_end * k : (sea_end + 1) * k, :] = (245, 245, 245)  # surf line
    elif s.scene == "desert":
        img[H:] = _vertical_gradient((230, 185, 115), (205, 150, 85), ground * k)
        phase = rng.uniform(0, 6.28)
        dune = HORIZON + 8 + 3 * np.sin(xx[0] / 7 + phase)
        img[(yy > dune[None, :]) & (yy < dune[None, :] + 2)] = (190, 135, 75)
        cx = int(rng.integers(4, 60))
        img[(HORIZON - 7) * k : (HORIZON + 2) * k, cx * k : (cx + 2) * k] = (50, 130, 60)  # a cactus
        img[(HORIZON - 4) * k : (HORIZON - 3) * k, (cx - 2) * k : (cx + 4) * k] = (50, 130, 60)
    elif s.scene == "mountains":
        img[H:] = _vertical_gradient((110, 120, 100), (80, 95, 75), ground * k)
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
        img[(HORIZON + 4) * k :] = _vertical_gradient((110, 185, 75), (80, 160, 60), (SIZE - HORIZON - 4) * k)
        img[(HORIZON + 6) * k : (HORIZON + 7) * k, :] = (130, 90, 50)  # fence rail
        img[(HORIZON + 3) * k : (HORIZON + 9) * k, _every(5, (0,), k)] = (130, 90, 50)  # fence posts
    img[H:] *= light
    return img


def _place(s: Scene, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(centre x, bottom y, size) for each object in 64-pixel units, with a little jitter."""
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


def _weather(img: np.ndarray, s: Scene, rng: np.random.Generator, layer: str, k: int = 1) -> np.ndarray:
    """Weather over the background (`layer`="back") or over everything (`layer`="front")."""
    H = HORIZON * k
    if s.weather == "fog":
        amount = 0.55 if layer == "back" else 0.15
        return img * (1 - amount) + np.array((200, 202, 208), np.float32) * amount
    if s.weather == "snow" and layer == "back":
        img[H:] = img[H:] * 0.35 + 235 * 0.65
        img[:H] = img[:H] * 0.7 + 170 * 0.3
    if s.weather == "rain" and layer == "back":
        img[:H] = img[:H] * 0.5 + np.array((110, 115, 125), np.float32) * 0.5
        img[H:] *= 0.8
    if layer == "front" and s.weather == "snow":
        n = 70
        ys, xs = rng.integers(0, SIZE, n), rng.integers(0, SIZE, n)
        img[_blocks(ys, xs, k)] = 250
    if layer == "front" and s.weather == "rain":
        for _ in range(45):
            x, y = int(rng.integers(0, SIZE)), int(rng.integers(0, SIZE))
            for d in range(4):  # a short diagonal streak
                if 0 <= y + d < SIZE and 0 <= x - d // 2 < SIZE:
                    block = img[(y + d) * k : (y + d + 1) * k, (x - d // 2) * k : (x - d // 2 + 1) * k]
                    block[:] = block * 0.4 + np.array((170, 185, 215)) * 0.6
    return img


def _coarse_noise(rng: np.random.Generator, sigma: float, k: int) -> np.ndarray:
    """Grain drawn per 64-unit pixel (the same draws at every scale), enlarged smoothly at scale k: repeated
    k×k blocks would teach the upscaler to print a 4×4 grid onto every textured area."""
    grain = rng.normal(0, sigma, (SIZE, SIZE, 1)).astype(np.float32)
    if k == 1:
        return grain
    return np.asarray(Image.fromarray(grain[..., 0], "F").resize((SIZE * k,) * 2, Image.BILINEAR))[..., None]


def _find_edges(im: Image.Image, k: int) -> Image.Image:
    """PIL's FIND_EDGES (8·centre − the 8 neighbours) with the neighbours k pixels away, so that at scale k
    the outlines are as wide as at scale 1 (k times more pixels), not k times thinner."""
    if k == 1:
        return im.filter(ImageFilter.FIND_EDGES)
    a = np.asarray(im, np.float32)
    pad = np.pad(a, [(k, k), (k, k)] + [(0, 0)] * (a.ndim - 2), mode="edge")
    h, w = a.shape[:2]
    ring = sum(pad[k + dy : k + dy + h, k + dx : k + dx + w] for dy in (-k, 0, k) for dx in (-k, 0, k)) - a
    return Image.fromarray(np.clip(8 * a - ring, 0, 255).astype(np.uint8), im.mode)


def _style(im: Image.Image, style: str, rng: np.random.Generator, k: int = 1) -> Image.Image:
    """The style as a filter over the finished picture."""
    if style == "plain":
        return im
    S = SIZE * k
    a = np.asarray(im, np.float32)
    if style == "watercolor":
        soft = np.asarray(im.filter(ImageFilter.GaussianBlur(1.2 * k)), np.float32)
        edges = np.asarray(_find_edges(im, k).convert("L"), np.float32)[..., None]
        out = soft * 0.75 + 255 * 0.25 - edges * 0.25 + _coarse_noise(rng, 6, k)
        return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    if style == "pixel art":
        small = im.resize((16, 16), Image.BOX).quantize(12, dither=Image.Dither.NONE).convert("RGB")
        return small.resize((S, S), Image.NEAREST)
    if style == "sketch":
        grey = ImageOps.grayscale(im)
        edges = np.asarray(_find_edges(grey, k), np.float32)[..., None]
        wash = a * 0.3 + 255 * 0.7
        lines = np.clip(edges * 2.5, 0, 255)
        hatch = ((np.add.outer(np.arange(S), np.arange(S)) % (4 * k)) < k)[..., None] * 12.0
        return Image.fromarray(np.clip(wash - lines - hatch, 0, 255).astype(np.uint8))
    if style == "neon":
        edges = np.asarray(_find_edges(im, k), np.float32)
        hsv = np.asarray(im.convert("HSV"), np.float32).copy()
        hsv[..., 1] = 255
        hsv[..., 2] = 255
        vivid = np.asarray(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"), np.float32)
        glow_mask = np.clip(edges.max(-1, keepdims=True) / 60, 0, 1)
        glow = np.asarray(
            Image.fromarray((vivid * glow_mask).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.0 * k)),
            np.float32,
        )
        out = a * 0.22 + vivid * glow_mask * 0.9 + glow * 0.8 + np.array((10, 0, 25), np.float32)
        return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    if style == "vintage":
        grey = a @ np.array([0.299, 0.587, 0.114], np.float32)
        sepia = grey[..., None] * np.array((1.07, 0.87, 0.62), np.float32)
        yy, xx = _grid(k)
        vignette = 1 - 0.55 * (((yy - 32) ** 2 + (xx - 32) ** 2) / (2 * 32**2))[..., None]
        out = (a * 0.45 + sepia * 0.55) * vignette * 0.95 + 12 + _coarse_noise(rng, 7, k)
        return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    raise ValueError(f"unknown style {style!r}")


def render(s: Scene, rng: np.random.Generator, scale: int = 1) -> Image.Image:
    """Draw `s` as a (64·scale)² RGB image; the same scene and rng state give the same pixels.

    `scale` 4 draws the same picture at 256² (the targets of the learned upscaler): every random
    draw is the same as at scale 1, and the sprites come from the emoji font at their finer size.
    """
    if scale < 1 or int(scale) != scale:
        raise ValueError(f"scale must be a whole number >= 1 (got {scale!r})")
    k = int(scale)
    back = _weather(_background(s, rng, k), s, rng, "back", k)
    im = Image.fromarray(np.clip(back, 0, 255).astype(np.uint8)).convert("RGBA")
    light = OBJECT_LIGHT[s.time]
    for obj, (cx, bottom, size) in zip(s.objects, _place(s, rng)):
        sp = sprite(obj.name, obj.colour, size * k)
        if light < 1:
            r, g, b, al = sp.split()
            sp = Image.merge("RGBA", [ch.point(lambda v: int(v * light)) for ch in (r, g, b)] + [al])
        w, h = sp.size
        im.alpha_composite(sp, (int(cx * k - w / 2), int(bottom * k - h)))
    front = _weather(np.asarray(im.convert("RGB"), np.float32), s, rng, "front", k)
    out = Image.fromarray(np.clip(front, 0, 255).astype(np.uint8))
    return _style(out, s.style, rng, k)
