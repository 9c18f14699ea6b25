"""Screening finished images: check the prompt and each image, blur what is flagged, note it in the record.

A flagged image is never replaced by black: it is blurred hard enough that its content cannot be made
out (a Gaussian of radius a tenth of its size, twice) while its colours stay, and its record's `extra`
gets a `safety` note saying which check flagged it, the score and threshold, and that it was blurred and
is held for review (the gallery keeps it out of its default listing until someone approves it). The
unblurred pixels are dropped here: they never reach a file, the gallery or an API response. An image
that passes gets no note; with the filter off (`KAIGA_SAFETY=off`) every record says so.

Example:
    >>> from PIL import Image
    >>> from kaiga.metadata import GenerationRecord
    >>> rec = GenerationRecord(prompt="a nude figure", seed=1, sampler="", steps=0, width=64, height=64,
    ...     model="m", model_hash="0123456789")
    >>> [(image, record, verdict)] = screen([Image.new("RGB", (64, 64), "white")], [rec], rec.prompt)
    >>> verdict.flagged, verdict.check, record.extra["safety"]["terms"], record.extra["safety"]["action"]
    (True, <Check.PROMPT: 'prompt'>, ['nude'], 'blurred')
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from PIL import Image, ImageFilter

from kaiga.metadata import GenerationRecord
from kaiga.safety.blocklist import Blocklist
from kaiga.safety.classifier import nsfw_scores
from kaiga.safety.settings import SafetySettings

NOTE_KEY = "safety"  # the record's extra key


class Check(str, Enum):
    PROMPT = "prompt"  # the prompt names a blocklisted term
    IMAGE = "image"  # the classifier's score is at or above the threshold


@dataclass(frozen=True)
class Verdict:
    """What screening found for one image. `check`: the check that flagged it (the prompt's first), or None."""

    flagged: bool
    check: Check | None
    score: float | None  # the classifier's P(nsfw); None with the filter off
    threshold: float
    terms: tuple[str, ...] = ()  # blocklisted terms the prompt contains

    def note(self) -> dict:
        """The record's `extra.safety` for a flagged image."""
        return {"flagged": True, "check": self.check.value, "score": round(self.score, 4), "threshold": self.threshold,
                "terms": list(self.terms), "action": "blurred", "review": "held"}


def describe(note: dict) -> str:
    """One line for people about a flagged image's note.

    >>> describe({"check": "image", "score": 0.91, "threshold": 0.5, "terms": []})
    'flagged by the safety filter (image check: score 0.91 >= threshold 0.5); saved blurred, held for review'
    """
    why = f"terms {', '.join(note['terms'])}" if note["check"] == Check.PROMPT.value else (
        f"score {note['score']} >= threshold {note['threshold']}")
    return f"flagged by the safety filter ({note['check']} check: {why}); saved blurred, held for review"


def blur(image: Image.Image) -> Image.Image:
    """So blurred that nothing in it can be made out, yet never black: its colours remain."""
    radius = max(image.size) / 10
    pad = int(3 * radius)
    pixels = np.asarray(image)  # [H, W] or [H, W, C]
    # mirrored outwards first: PIL's blur would otherwise darken a border a radius wide
    padded = np.pad(pixels, [(pad, pad), (pad, pad)] + [(0, 0)] * (pixels.ndim - 2), mode="symmetric")
    blurred = Image.fromarray(padded, image.mode)
    blurred = blurred.filter(ImageFilter.GaussianBlur(radius)).filter(ImageFilter.GaussianBlur(radius))
    return blurred.crop((pad, pad, pad + image.width, pad + image.height))


def screen(images: list[Image.Image], records: list[GenerationRecord], prompt: str,
           settings: SafetySettings | None = None) -> list[tuple[Image.Image, GenerationRecord, Verdict]]:
    """Each image with its record and verdict: flagged ones blurred and noted (see the module's docstring).

    Settings default to the environment's (`SafetySettings.from_env`); the blocklist is read at each call,
    so an edit of the user's file applies to the next image.
    """
    settings = settings or SafetySettings.from_env()
    if not settings.enabled:
        off = Verdict(False, None, None, settings.threshold)
        return [(im, _with_note(rec, {"filter": "off"}), off) for im, rec in zip(images, records)]
    terms = Blocklist.load().match(prompt)
    screened = []
    for image, record, score in zip(images, records, nsfw_scores(images)):
        check = Check.PROMPT if terms else Check.IMAGE if score >= settings.threshold else None
        verdict = Verdict(check is not None, check, score, settings.threshold, terms)
        if verdict.flagged:
            image, record = blur(image), _with_note(record, verdict.note())
        screened.append((image, record, verdict))
    return screened


def screen_frames(frames: list[Image.Image], prompt: str,
                  settings: SafetySettings | None = None) -> tuple[list[Image.Image], list[bool]]:
    """`screen` for pictures without records (the frames `kaiga explain` shows): each flagged frame blurred,
    and which were; a blocklisted prompt flags every frame.

    >>> frames, flagged = screen_frames([Image.new("RGB", (8, 8), "white")], "a nude figure")
    >>> flagged, frames[0].size
    ([True], (8, 8))
    """
    settings = settings or SafetySettings.from_env()
    if not settings.enabled:
        return list(frames), [False] * len(frames)
    terms = Blocklist.load().match(prompt)
    flagged = [bool(terms) or score >= settings.threshold for score in nsfw_scores(frames)]
    return [blur(f) if bad else f for f, bad in zip(frames, flagged)], flagged


def _with_note(record: GenerationRecord, note: dict) -> GenerationRecord:
    return record.model_copy(update={"extra": {**record.extra, NOTE_KEY: note}})
