"""Midjourney's vary, pan and zoom out, as image edits: the canvas, the mask and the request of each.

Each starts from an image and what its metadata says made it (a kaiga record or A1111 parameters: prompt,
negative prompt, style, model, size), brought back to the size it was made at (a saved PNG is enlarged for
viewing), and gives an `EditPlan`: the init image, the mask (white = repaint) and the request fields. The
Studio runs a plan as any edit (kaiga.studio.Studio.remix), so each variation is a normal image with its
record; every interface (CLI, jobs API, web UI) makes the same plan.

- **vary** `--subtle` / `--strong`: image → image at strength 0.35 / 0.75 (subtle keeps the composition and
  most detail, strong keeps the layout and colours); with a region mask, only the region is redrawn (at
  0.6 / 1.0, Midjourney's Vary (Region)).
- **zoom out** `--factor 1.5 | 2`: the image shrunk by the factor into the middle of a canvas of its own size,
  the border (edge pixels stretched outwards, so the autoencoder sees no hard frame) repainted from pure
  noise (strength 1) with the image kept pixel for pixel inside; the result is at the model's native size.
- **blend** 2-4 images (Midjourney's /blend): their latents averaged by the model's autoencoder (rescaled
  to the inputs' spread, as an average of latents is flatter than any one), decoded as the init image and
  redrawn at strength 0.6 with their prompts composed with equal `::` weights (`blend_prompt`).
- **pan** `--left | --right | --up | --down`: the view moved by `amount` (default half) of the image in that
  direction, the revealed strip repainted and the rest kept, at the same size.

Example:
    >>> from PIL import Image
    >>> plan = zoom_plan(Image.new("RGB", (64, 64), "red"), {"prompt": "a red car", "width": 64, "height": 64}, 2)
    >>> plan.init.size, plan.mask.getpixel((0, 0)), plan.mask.getpixel((32, 32)), plan.fields["strength"]
    ((64, 64), 255, 0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from kaiga.request import RequestError

VARY = {"subtle": 0.35, "strong": 0.75}
VARY_REGION = {"subtle": 0.6, "strong": 1.0}
ZOOM_FACTORS = (1.5, 2.0)  # Midjourney's; any factor from 1.1 to 4 works
PAN_DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SEAM_BLUR = 2  # pixels of mask blur where the kept image meets the repainted part
# What a variation takes over from the image's record (the rest: the request's defaults or the caller's).
RECORDED = ("prompt", "negative_prompt", "model", "sampler", "steps", "guidance")
# What belongs to the image's model, and is dropped with it where that model cannot edit (a GAN's image).
MODEL_FIELDS = ("model", "sampler", "steps", "guidance")


@dataclass
class EditPlan:
    """An edit ready to run: the init image at the size to make, its mask (None: the whole image) and fields."""

    init: Image.Image
    mask: Image.Image | None
    fields: dict
    kind: str  # "vary-subtle", "zoom-2", "pan-left", ... (the record's extra.remix)
    note: dict | None = None  # more for the records' extra (a blend's sources)


def image_record(image) -> dict:
    """What an image's metadata says made it, as a record dict: kaiga's record, or A1111's parameters (prompt,
    negative prompt, size); {} for an image without any (a variation of it has no prompt)."""
    from kaiga.metadata import read_metadata

    try:
        meta = read_metadata(image)
    except Exception:  # no readable metadata is the usual case for a photo, never an error
        return {}
    if meta.record is not None:
        return meta.record.model_dump()
    p = meta.parameters
    out = {"prompt": str(p.get("prompt", "")), "negative_prompt": str(p.get("negative_prompt", ""))}
    size = str(p.get("Size", ""))
    if "x" in size and all(v.isdigit() for v in size.split("x", 1)):
        out["width"], out["height"] = (int(v) for v in size.split("x", 1))
    return out


def recorded_fields(record: dict) -> dict:
    """The request fields an image's record (kaiga's, as a dict; or A1111 parameters) gives a variation of it."""
    extra = record.get("extra") or {}
    fields = {k: record[k] for k in RECORDED if record.get(k) not in (None, "", 0)}
    if (extra.get("style") or {}).get("mix"):
        fields["style"] = extra["style"]["mix"]
    for name in ("stylize", "chaos"):
        if extra.get(name) is not None:
            fields[name] = extra[name]
    return fields


def native(image: Image.Image, record: dict) -> Image.Image:
    """The image at the size it was made at (its record's width × height; as it is without one)."""
    image = image.convert("RGB")
    size = (int(record.get("width") or image.width), int(record.get("height") or image.height))
    return image if image.size == size else image.resize(size, Image.LANCZOS)


def vary_plan(image: Image.Image, record: dict, mode: str = "strong", region: Image.Image | None = None) -> EditPlan:
    """A subtle or strong variation, of the whole image or of `region` (white = redraw)."""
    if mode not in VARY:
        raise RequestError(f"vary: subtle or strong (got {mode!r})")
    init = native(image, record)
    mask = None
    if region is not None:
        mask = region.convert("L").resize(init.size, Image.NEAREST)
        if mask.getextrema()[1] < 128:
            raise RequestError("region: the mask has no white (nothing to redraw); white marks the region")
    strength = (VARY_REGION if mask is not None else VARY)[mode]
    fields = {**recorded_fields(record), "strength": strength, **({"mask_blur": SEAM_BLUR} if mask else {})}
    return EditPlan(init, mask, fields, f"vary-{mode}" + ("-region" if mask else ""))


def zoom_plan(image: Image.Image, record: dict, factor: float = 2.0) -> EditPlan:
    """Zoom out by `factor` (1.1-4): the image in the middle of a canvas of its size, the border to paint."""
    if not 1.1 <= factor <= 4:
        raise RequestError(f"factor: from 1.1 to 4 (Midjourney's are 1.5 and 2; got {factor:g})")
    full = native(image, record)
    w, h = full.size
    inner = (max(1, round(w / factor)), max(1, round(h / factor)))
    left, top = (w - inner[0]) // 2, (h - inner[1]) // 2
    small = full.resize(inner, Image.LANCZOS)
    # the border: the shrunk image's edges stretched outwards (a flat colour would be a frame for the model to
    # continue; this keeps the sky above and the road below)
    pad = (left, top, w - inner[0] - left, h - inner[1] - top)
    canvas = _edge_extended(small, pad)
    mask = Image.new("L", (w, h), 255)
    mask.paste(0, (left, top, left + inner[0], top + inner[1]))
    return EditPlan(canvas, mask, {**recorded_fields(record), "strength": 1.0, "mask_blur": SEAM_BLUR},
                    f"zoom-{factor:g}")


def pan_plan(image: Image.Image, record: dict, direction: str, amount: float = 0.5) -> EditPlan:
    """Move the view by `amount` (0.1-0.9) of the image towards `direction`; the revealed strip is painted."""
    if direction not in PAN_DIRECTIONS:
        raise RequestError(f"pan: one of {', '.join(PAN_DIRECTIONS)} (got {direction!r})")
    if not 0.1 <= amount <= 0.9:
        raise RequestError(f"amount: from 0.1 to 0.9 of the image (got {amount:g})")
    full = native(image, record)
    w, h = full.size
    dx, dy = PAN_DIRECTIONS[direction]
    sx, sy = round(dx * amount * w), round(dy * amount * h)  # the view moves by (sx, sy): the content by minus that
    kept = full.crop((max(0, sx), max(0, sy), w + min(0, sx), h + min(0, sy)))
    pad = (max(0, -sx), max(0, -sy), max(0, sx), max(0, sy))
    canvas = _edge_extended(kept, pad)
    mask = Image.new("L", (w, h), 255)
    mask.paste(0, (pad[0], pad[1], pad[0] + kept.width, pad[1] + kept.height))
    return EditPlan(canvas, mask, {**recorded_fields(record), "strength": 1.0, "mask_blur": SEAM_BLUR},
                    f"pan-{direction}")


def remix_plan(image: Image.Image, record: dict, *, vary: str | None = None, pan: str | None = None,
               pan_amount: float | None = None, zoom: float | None = None,
               region: Image.Image | None = None) -> EditPlan | None:
    """The plan of the one remix that the fields name (the APIs' `vary`, `pan` with `pan_amount`, `zoom`), or
    None where none is named; `region` (white = redraw) only with `vary`. One line naming the field otherwise.

    >>> from PIL import Image
    >>> remix_plan(Image.new("RGB", (64, 64)), {}, pan="left").kind
    'pan-left'
    """
    named = [name for name, value in (("vary", vary), ("pan", pan), ("zoom", zoom)) if value is not None]
    if len(named) > 1:
        raise RequestError(f"{named[1]}: one of vary, pan and zoom at a time (got {' and '.join(named)})")
    if pan_amount is not None and pan is None:
        raise RequestError("pan_amount: applies to a pan; give pan too")
    if region is not None and named and vary is None:
        raise RequestError(f"mask: {named[0]} takes no mask (only vary does: the region to redraw)")
    if vary is not None:
        return vary_plan(image, record, vary, region)
    if pan is not None:
        return pan_plan(image, record, pan, 0.5 if pan_amount is None else pan_amount)
    if zoom is not None:
        return zoom_plan(image, record, zoom)
    return None


def blend_prompt(records: list[dict], weights: list[float]) -> str:
    """The images' prompts composed with Midjourney's `::` weights (a composed prompt read as its main text;
    images without a prompt left out; one prompt as it is)."""
    from kaiga.prompt_syntax import is_composed, main_text

    parts = []
    for record, w in zip(records, weights):
        prompt = (record.get("prompt") or "").strip()
        prompt = main_text(prompt) if is_composed(prompt) else prompt
        if prompt and prompt.replace(":", " ").strip():
            parts.append((prompt.replace("::", " "), w))
    if len({p for p, _ in parts}) == 1:
        return parts[0][0]
    return " ".join(f"{p}::{w:g}" for p, w in parts)


def mix_latents(model, images: list[Image.Image], weights: list[float], size: tuple[int, int]) -> Image.Image:
    """The images (each resized to `size`) encoded by the model's autoencoder, their latents mixed by `weights`
    (summing to 1) and rescaled to the inputs' spread (an average is flatter than any one), decoded: the init
    image of a blend."""
    import torch

    from kaiga.images import to_pil, to_tensor

    with torch.no_grad():
        pixels = torch.cat([to_tensor(im.convert("RGB").resize(size, Image.LANCZOS)) for im in images])
        z = model.encode_images(pixels)
        mixed = sum(w * zi for w, zi in zip(weights, z))
        mixed = mixed / mixed.std() * z.std(dim=(1, 2, 3)).mean()
        return to_pil(model.decode(mixed[None]))[0]


def _edge_extended(image: Image.Image, pad: tuple[int, int, int, int]) -> Image.Image:
    """`image` with (left, top, right, bottom) pixels added, each its nearest edge pixel repeated."""
    import numpy as np

    a = np.asarray(image)
    left, top, right, bottom = pad
    return Image.fromarray(np.pad(a, ((top, bottom), (left, right), (0, 0)), mode="edge"))

