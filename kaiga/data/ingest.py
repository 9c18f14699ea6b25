"""`kaiga data import`: a folder of a user's images → a clean dataset folder and a report of what was removed.

Each image goes through `kaiga.provenance.privacy.clean_image` (metadata stripped after its orientation
is applied, faces blurred unless consent is recorded) and is written under the same name into the new
folder; the source is never written to. A `metadata.jsonl` in the imagefolder format
(`{"file_name": ..., "text": ...}`, see `kaiga.data.dataset`) is carried over line for line, and then
only the images it lists are imported; without one, every PNG, JPEG and WebP under the folder is.

Consent to keep faces unblurred is recorded in one of three ways, most specific first:
- a `"faces_consent": true` (or false) column on an image's line of `metadata.jsonl`;
- a consent file (`--consent FILE`): one file name a line, relative to the folder, `#` starts a comment;
- `--faces-consent`: every person in every image consented (your own portraits).

`privacy-report.json` lists, per image, what was found and removed and the faces' boxes.

Example:
    >>> import tempfile; from pathlib import Path; from PIL import Image
    >>> src, dst = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp()) / "clean"
    >>> Image.new("RGB", (16, 16), "red").save(src / "a.png")
    >>> report = import_images(plan_import(src, dst), dst)
    >>> [e["file_name"] for e in report["images"]], (dst / "a.png").is_file(), (dst / REPORT).is_file()
    (['a.png'], True, True)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from kaiga.data.dataset import IMAGE_SUFFIXES, METADATA
from kaiga.provenance.privacy import PrivacyError, clean_image

REPORT = "privacy-report.json"
MAX_IMAGE_BYTES = 64 * 2**20  # a photo larger than this is refused before it is read (phone photos: 2-12 MB)


class IngestError(ValueError):
    """A source folder, consent file or metadata.jsonl that cannot be imported; the message says what to fix."""


@dataclass(frozen=True)
class ImportPlan:
    """What `import_images` will do, every input checked before a file is written."""

    source: Path
    items: tuple[tuple[str, bool], ...]  # (file name relative to source, faces consent)
    rows: tuple[str, ...] | None  # the metadata.jsonl lines to carry over (None: the folder had none)


def check_out(source: Path, out: Path) -> None:
    """IngestError unless `out` is outside `source` (so the source is never written) and empty or new."""
    src, dst = source.resolve(), out.resolve()
    if dst == src or src in dst.parents:
        raise IngestError(f"--out: {out} is inside {source}; write the clean copy outside the source folder")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise IngestError(f"--out: {out} is not empty; give a new or empty folder (nothing is overwritten)")


def read_consent_file(path: Path, source: Path) -> set[str]:
    """The file names a consent file lists, each checked to be an image of `source` (a typo is no consent)."""
    names = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        name = line.split("#", 1)[0].strip()
        if not name:
            continue
        if not _inside(source, name) or not (source / name).is_file():
            raise IngestError(f"--consent: {path}:{lineno}: {name!r} is not an image in {source}")
        names.add(Path(name).as_posix())
    return names


def _inside(folder: Path, name: str) -> bool:
    path = (folder / name).resolve()
    return folder.resolve() in path.parents


def plan_import(source: Path, out: Path, *, consent_file: Path | None = None,
                all_consent: bool = False) -> ImportPlan:
    """Check `source`, `out` and the consent given; the plan of which images to clean, with which consent."""
    source, out = Path(source), Path(out)
    check_out(source, out)
    listed = read_consent_file(consent_file, source) if consent_file is not None else set()
    meta = source / METADATA
    if not meta.is_file():
        names = sorted(p.relative_to(source).as_posix() for p in source.rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and out.resolve() not in p.parents)
        if not names:
            raise IngestError(f"DIR: {source} has no PNG, JPEG or WebP image")
        return ImportPlan(source, tuple((n, all_consent or n in listed) for n in names), None)
    items, rows = [], []
    for lineno, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            name = row["file_name"]
            if not isinstance(name, str):
                raise TypeError("file_name must be text")
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise IngestError(f"{meta}:{lineno}: needs a file_name ({e})") from None
        if not _inside(source, name) or not (source / name).is_file():
            raise IngestError(f"{meta}:{lineno}: {name!r} is not a file inside {source}")
        consent = row.get("faces_consent")
        if consent is not None and not isinstance(consent, bool):
            raise IngestError(f"{meta}:{lineno}: faces_consent must be true or false (got {consent!r})")
        name = Path(name).as_posix()
        items.append((name, consent if consent is not None else (all_consent or name in listed)))
        rows.append(line)
    if not items:
        raise IngestError(f"{meta} lists no images")
    return ImportPlan(source, tuple(items), tuple(rows))


def import_images(plan: ImportPlan, out: Path, progress=None) -> dict:
    """Clean every image of `plan` into `out`; writes metadata.jsonl (when the source had one) and the report,
    and returns the report. An image that cannot be read is left out and named in the report's `skipped`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries, skipped, kept = [], [], set()
    for name, consent in plan.items:
        path = plan.source / name
        try:
            if os.stat(path).st_size > MAX_IMAGE_BYTES:
                raise PrivacyError(f"{name}: larger than {MAX_IMAGE_BYTES // 2**20} MiB")
            data, report = clean_image(path.read_bytes(), faces_consent=consent, field=name)
        except (PrivacyError, OSError) as e:
            skipped.append({"file_name": name, "error": str(e)})
        else:
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            entries.append({"file_name": name, **report.to_dict()})
            kept.add(name)
        if progress is not None:
            progress(1)
    if plan.rows is not None:
        lines = [r for r, (name, _) in zip(plan.rows, plan.items) if name in kept]
        (out / METADATA).write_text("".join(line.rstrip("\n") + "\n" for line in lines), encoding="utf-8")
    report = {"source": str(plan.source), "images": entries, "skipped": skipped, "totals": totals(entries, skipped)}
    (out / REPORT).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def totals(entries: list[dict], skipped: list[dict]) -> dict:
    """Counts over the report's images, for the summary table.

    >>> totals([{"exif_tags": ["Make"], "gps": True, "faces": [{}], "faces_blurred": True}], [])["faces_blurred"]
    1
    """
    def count(test) -> int:
        return sum(1 for e in entries if test(e))

    return {
        "images": len(entries),
        "with_exif": count(lambda e: e.get("exif_tags")),
        "with_gps": count(lambda e: e.get("gps")),
        "orientation_applied": count(lambda e: e.get("orientation_applied")),
        "with_thumbnail": count(lambda e: e.get("thumbnail")),
        "with_xmp": count(lambda e: e.get("xmp")),
        "with_iptc_or_comment": count(lambda e: e.get("iptc") or e.get("comment")),
        "with_png_text": count(lambda e: e.get("png_text")),
        "faces_found": sum(len(e.get("faces", ())) for e in entries),
        "faces_blurred": sum(len(e.get("faces", ())) for e in entries if e.get("faces_blurred")),
        "faces_kept_with_consent": sum(len(e.get("faces", ())) for e in entries if e.get("faces_consent")),
        "skipped": len(skipped),
    }
