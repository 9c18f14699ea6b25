"""A live preview: a request edited as a person types, the newest version drawn as soon as the last is done.

`LiveSession` is what `/v1/live` (kaiga/server/live_api.py), `kaiga live` (kaiga/cli_live.py) and the web UI's
live mode share. Each update is a set of request fields merged onto the request as it stands (the first needs
a `prompt`); `render()` draws the newest request, or says why it need not:
- **Similarity filter** (as StreamDiffusion skips input frames that barely changed): when only the prompt
  changed, and its text vector (the model's own `conditioning`, pooled or per token) is at least
  `LiveSettings.similarity` cosine-similar to the prompt last drawn, the frame is skipped: a trailing space,
  a word the model does not know, "a red car." after "a red car" make the same picture.
- **Frames kept**: the last `LiveSettings.keep` frames drawn are kept by request, so deleting what was just
  typed (back to a prompt already drawn) shows its frame again at once (`cached`), without drawing it.
- **Warm start** (`LiveSettings.warm_start`, 0 = off): when only the prompt changed, a model that edits redraws
  the previous frame at that denoising strength (image to image, its record naming the frame as its init)
  instead of starting from noise: the layout stays and the frame costs that share of the steps.
- **Superseded frames**: `render(stale=...)` asks `stale()` at every denoising step and abandons the frame
  once a newer update has come, so the picture a person waits for after their last key starts at once instead
  of after a frame nobody will look at.
Debouncing (waiting `debounce_ms` for the typing to settle) belongs to whoever receives the keystrokes: the
server's receive loop and the terminal's.

Frames carry the image as a PNG (with its record, signed like every image kaiga writes) and how long it took.

Example:
    >>> from kaiga.studio import Studio
    >>> live = LiveSession(Studio(watermark=False), LiveSettings(similarity=0.999))
    >>> live.update({"prompt": "a red car", "seed": 3, "steps": 2}).prompt
    'a red car'
    >>> frame = live.render(); frame.skipped, frame.image.size
    (None, (64, 64))
    >>> _ = live.update({"prompt": "a red car "}); live.render().skipped
    'the prompt barely moved: similarity 1.000'
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
from PIL import Image

from kaiga.metadata import png_bytes
from kaiga.provenance.credentials import sign_by_default
from kaiga.request import GenerationRequest, RequestError, describe_error

LIVE_FIELDS_EXCLUDED = ("n",)  # a frame is one image


@dataclass(frozen=True)
class LiveSettings:
    """How a live session decides what to draw.

    `similarity`: skip a frame whose prompt vector is at least this cosine-similar to the last drawn one (only
    the prompt changed); above 1.0 skips none. `debounce_ms`: how long the typing must rest before a frame
    starts (read by the receive loops). `supersede`: abandon a frame being drawn once a newer update came."""

    similarity: float = 0.995
    debounce_ms: int = 80
    supersede: bool = True
    keep: int = 32  # frames kept by request (a 64² PNG is some 10 KB)
    warm_start: float = 0.0  # strength of a redraw from the previous frame when only the prompt changed; 0: off


class _Superseded(Exception):
    """A newer update came while a frame was drawn (`LiveSession.render`'s `stale`)."""


@dataclass
class Frame:
    """One answer of `render`: a drawn image (`image`, `png`, `record`), or `skipped` saying why not."""

    number: int
    image: Image.Image | None = None
    png: bytes = b""
    record: dict = field(default_factory=dict)
    ms: float = 0.0  # drawing, encoding and signing
    similarity: float | None = None  # of its prompt vector to the last frame's (None: not compared)
    skipped: str | None = None
    cached: bool = False  # a frame drawn before for the same request, shown again
    warm: bool = False  # redrawn from the previous frame (`LiveSettings.warm_start`)


class LiveSession:
    """One person's live preview over a Studio (which holds the loaded models); not thread-safe: one render at a
    time per session (the server's receive loop keeps it so)."""

    def __init__(self, studio, settings: LiveSettings | None = None, defaults: dict | None = None,
                 resolve: Callable[[str | None], str] | None = None):
        self.studio, self.settings = studio, settings or LiveSettings()
        self.resolve = resolve  # a model name -> what the Studio loads (the server's catalog: only its models)
        self.fields: dict = dict(defaults or {})
        self.request: GenerationRequest | None = None
        self.frames = 0
        self._drawn: GenerationRequest | None = None  # the request of the last frame drawn
        self._drawn_vector: torch.Tensor | None = None
        self._kept: OrderedDict[str, Frame] = OrderedDict()  # request JSON -> its frame, the newest last
        self._drawn_image: Image.Image | None = None

    def update(self, fields: dict) -> GenerationRequest:
        """Merge `fields` (any request field) onto the request as it stands and check the result against its
        model; a RequestError names the field, and the request stays as it was."""
        if not isinstance(fields, dict):
            raise RequestError("message: must be a JSON object of request fields, such as {\"prompt\": \"a red car\"}")
        fields = dict(fields)
        for name in LIVE_FIELDS_EXCLUDED:
            if name in fields:
                raise RequestError(f"{name}: a live preview draws one image a frame; send `seed` to choose it")
        merged = {k: v for k, v in {**self.fields, **fields}.items() if v is not None}  # null: back to the default
        if not merged.get("prompt"):
            raise RequestError("prompt: the first message needs a prompt, such as {\"prompt\": \"a red car\"}")
        try:
            request = GenerationRequest(**{**merged, "n": 1})
        except RequestError:
            raise
        except Exception as e:  # pydantic's ValidationError: one line per problem, naming the field
            raise RequestError(describe_error(e)) from None
        if request.seed is None:
            request = request.model_copy(update={"seed": 0})  # a preview that changes with each key would flicker
        if self.resolve is not None:
            request = request.model_copy(update={"model": self.resolve(request.model)})
        self.studio.check(request)
        self.fields, self.request = merged, request
        return request

    def render(self, stale: Callable[[], bool] | None = None) -> Frame:
        """Draw the request as it stands, or skip it (nothing new, or a prompt that barely moved); `stale()`
        true at a denoising step abandons the frame (`skipped`: superseded) when the settings say so."""
        if self.request is None:
            raise RequestError("prompt: nothing to draw yet; send {\"prompt\": ...} first")
        request, self.frames = self.request, self.frames + 1
        if self._drawn is not None and request == self._drawn:
            return Frame(self.frames, skipped="nothing changed", similarity=1.0)
        key = request.model_dump_json()
        if (kept := self._kept.get(key)) is not None:
            self._kept.move_to_end(key)
            self._drawn, self._drawn_vector, self._drawn_image = request, self._vector(request), kept.image
            return replace(kept, number=self.frames, ms=0.0, similarity=None, cached=True)
        t0 = time.perf_counter()
        vector = self._vector(request)
        similarity = None
        if self._drawn is not None and _same_but_prompt(request, self._drawn) and vector is not None \
                and self._drawn_vector is not None and vector.shape == self._drawn_vector.shape:
            similarity = float(torch.nn.functional.cosine_similarity(vector, self._drawn_vector, dim=0))
            if similarity >= self.settings.similarity:
                self._drawn = request  # the text changed: the next one is compared with this
                return Frame(self.frames, skipped=f"the prompt barely moved: similarity {similarity:.3f}",
                             similarity=similarity)
        on_step = None
        if stale is not None and self.settings.supersede:
            def on_step(done: int, total: int) -> None:
                if done < total and stale():
                    raise _Superseded
        warm = self._warm(request)
        try:
            if warm:  # the previous frame (our own image: no faces of anyone's to blur) as the init
                fields = request.model_dump(exclude={"n", "init_image", "mask", "strength"}, exclude_none=True)
                made = self.studio.vary(self._drawn_image, faces_consent=True, on_step=on_step,
                                        strength=self.settings.warm_start, **fields)[0]
            else:
                made = self.studio.generate(request, on_step=on_step)[0]
        except _Superseded:
            return Frame(self.frames, skipped="superseded by a newer update",
                         ms=round((time.perf_counter() - t0) * 1000, 1))
        png = sign_by_default(png_bytes(made.image, made.record), made.record)
        self._drawn, self._drawn_vector, self._drawn_image = request, vector, made.image
        frame = Frame(self.frames, made.image, png, made.record.model_dump(mode="json"),
                      round((time.perf_counter() - t0) * 1000, 1), similarity, warm=warm)
        self._kept[key] = frame
        while len(self._kept) > self.settings.keep:
            self._kept.popitem(last=False)
        return frame

    def _warm(self, request: GenerationRequest) -> bool:
        """Whether this frame redraws the previous one: asked for, only the prompt changed, a model that edits."""
        if not self.settings.warm_start or self._drawn_image is None or request.is_edit:
            return False
        return _same_but_prompt(request, self._drawn) and self.studio.capabilities(request.model).edits

    @torch.no_grad()
    def _vector(self, request: GenerationRequest) -> torch.Tensor | None:
        """The prompt's text vector as the model reads it, flattened (None for a model without `conditioning`)."""
        model = self.studio.load(request.model).model
        conditioning = getattr(model, "conditioning", None)
        if conditioning is None:
            return None
        return conditioning([request.prompt], request).flatten().float().cpu()


def _same_but_prompt(a: GenerationRequest, b: GenerationRequest) -> bool:
    return a.model_copy(update={"prompt": ""}) == b.model_copy(update={"prompt": ""})


def error_message(e: Exception) -> dict:
    """A refused update as the live protocol says it: {"type": "error", "field": ..., "error": ...}."""
    text = describe_error(e) if not isinstance(e, RequestError) else str(e)
    name = text.split(":", 1)[0] if ":" in text.split(" ", 1)[0] else None
    return {"type": "error", "field": name, "error": text}
