"""How the safety filter is set: on or off, and the image classifier's threshold, from the environment.

`KAIGA_SAFETY`: `on` (the default) or `off`. Off is for research use; every image made while it is off
says so in its record (`extra.safety = {"filter": "off"}`), so an unscreened image is never mistaken
for a screened one. `KAIGA_SAFETY_THRESHOLD`: the classifier's score (0-1) at or above which an image is
flagged; default 0.8. Anything else is a `SafetySettingsError` naming the variable and what is allowed.

Example:
    >>> SafetySettings.from_env({"KAIGA_SAFETY_THRESHOLD": "0.8"})
    SafetySettings(enabled=True, threshold=0.8)
    >>> SafetySettings.from_env({"KAIGA_SAFETY_THRESHOLD": "high"})
    Traceback (most recent call last):
    ...
    kaiga.safety.settings.SafetySettingsError: KAIGA_SAFETY_THRESHOLD: must be a number above 0 and at most 1 (got 'high')
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping

from kaiga.request import RequestError

ENABLED_VAR = "KAIGA_SAFETY"
THRESHOLD_VAR = "KAIGA_SAFETY_THRESHOLD"
DEFAULT_THRESHOLD = 0.8  # open_nsfw: above 0.8 "highly probable"; at 0.5 (its package default) our transformer's
# images came within 0.03 of a false flag (max 0.467, docs/trust/safety.md)


class SafetySettingsError(RequestError):
    """A safety setting out of range: a usage error (exit 2 in the CLI), never a traceback."""


def check_threshold(value: float, name: str = THRESHOLD_VAR) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= 1):
        raise SafetySettingsError(f"{name}: must be a number above 0 and at most 1 (got {value!r})")
    return float(value)


@dataclass(frozen=True)
class SafetySettings:
    enabled: bool = True
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self):
        check_threshold(self.threshold, "threshold")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> SafetySettings:
        switch = environ.get(ENABLED_VAR, "on").strip().lower()
        if switch not in ("on", "off"):
            raise SafetySettingsError(f"{ENABLED_VAR}: must be on or off (got {environ[ENABLED_VAR]!r})")
        raw = environ.get(THRESHOLD_VAR)
        if raw is None or not raw.strip():
            return cls(switch == "on")
        try:
            threshold = float(raw)
        except ValueError:
            threshold = raw  # named as given in the error below
        return cls(switch == "on", check_threshold(threshold))
