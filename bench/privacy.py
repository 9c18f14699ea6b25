"""Privacy at ingest, measured: false faces on face-free scenes renders, the drawn face found at each size,
and the time to clean one image.

Usage:
    OMP_NUM_THREADS=1 python bench/privacy.py [--n 200] [--json bench/results/privacy.json]

The renders are `kaiga.data.dataset.scene_example(i, 1234)` for i < n (64×64, no face in them): every box
the detector returns on one is a false face. The face is the shaded drawing of tests/provenance/photos.py,
resized to each side with Lanczos. Cleaning time is `clean_image` on a render's PNG bytes (decode, metadata,
enlarge to 256² and run three cascades, re-encode) and on a 640×480 phone-style JPEG.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from kaiga.data.dataset import scene_example
from kaiga.provenance.faces import detect_faces
from kaiga.provenance.privacy import clean_image
from tests.provenance.photos import drawn_face, phone_jpeg


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--json", type=Path, default=Path("bench/results/privacy.json"))
    args = parser.parse_args()
    false_faces, times = [], []
    for i in range(args.n):
        data = _png(scene_example(i, 1234)[0])
        t0 = time.perf_counter()
        _, report = clean_image(data)
        times.append(time.perf_counter() - t0)
        if report.faces:
            false_faces.append({"index": i, "boxes": [b.to_dict() for b in report.faces]})
    sizes = {side: len(detect_faces(drawn_face(160).resize((side, side), Image.LANCZOS))) for side in
             (16, 20, 24, 32, 48, 64, 96, 160)}
    photo = phone_jpeg(Image.new("RGB", (640, 480), (120, 140, 160)).copy())
    t0 = time.perf_counter()
    clean_image(photo)
    photo_ms = (time.perf_counter() - t0) * 1000
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor() or
        platform.machine(), "renders": args.n, "renders_with_false_faces": len(false_faces),
        "false_face_rate": len(false_faces) / args.n, "false_faces": false_faces,
        "drawn_face_found_at_side": sizes,
        "clean_ms_per_64px_render": round(1000 * sum(times) / len(times), 1),
        "clean_ms_640x480_jpeg": round(photo_ms, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "false_faces"}, indent=2))


if __name__ == "__main__":
    main()
