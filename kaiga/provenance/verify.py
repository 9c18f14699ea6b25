"""What `kaiga verify` checks of an image file, as one result: its signed content credentials (C2PA, against the
local trust anchor), its invisible watermark (found or not, its p-value, whether it names the record) and its
generation record. The CLI prints it as a table (or JSON) and the server answers it for a gallery image
(`GET /v1/gallery/images/{id}/verify`, shown in the web UI's image details).

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("RGB", (64, 64), "red").save(buf, format="PNG")
    >>> result = verify_image(buf.getvalue())
    >>> result["ok"], result["credentials"]["status"], result["watermark"]["status"]
    (False, 'none', 'not found')
"""

from __future__ import annotations

import io
import re


def watermark_check(data: bytes, record: dict | None) -> dict:
    """The invisible watermark of an image file: found or not, its p-value, and whether it names `record`
    (the payload the record says it carries, when it says one)."""
    from PIL import Image

    from kaiga.provenance.watermark import THRESHOLD, detect

    claimed = (record or {}).get("extra", {}).get("watermark")
    expected = int(claimed, 16) if isinstance(claimed, str) and re.fullmatch(r"[0-9a-f]{8}", claimed) else None
    try:
        with Image.open(io.BytesIO(data)) as im:
            found = detect(im.convert("RGB"), expected=expected)
    except OSError as e:
        return {"status": "unreadable", "reason": str(e)}
    result = {"status": "found" if found.marked else "not found", **found.to_dict(), "threshold": THRESHOLD}
    if expected is not None:
        result["matches_record"] = found.marked and found.payload == expected
    return result


def verify_ok(credentials: dict, watermark: dict) -> bool:
    """An image passes when its credentials are trusted and its watermark is found and, where the record says
    a payload, names that record."""
    return (credentials["status"] == "trusted" and watermark["status"] == "found"
            and watermark.get("matches_record", True))


def verify_image(data: bytes) -> dict:
    """{ok, credentials, watermark, record, record_note} of an image file's bytes."""
    from kaiga.metadata import MetadataError, read_metadata
    from kaiga.provenance.credentials import read_credentials

    credentials = read_credentials(data)
    try:
        meta = read_metadata(data)
        record = meta.record.model_dump(mode="json") if meta.record is not None else None
        record_note = "kaiga record" if meta.record is not None else f"no kaiga record (metadata: {meta.source})"
    except (MetadataError, OSError, ValueError) as e:
        record, record_note = None, f"unreadable ({e})"
    watermark = watermark_check(data, record)
    return {"ok": verify_ok(credentials, watermark), "credentials": credentials, "watermark": watermark,
            "record": record, "record_note": record_note}
