"""What signed content credentials (C2PA) cost a kaiga PNG: bytes added by the manifest, and signing time.

Usage:
    OMP_NUM_THREADS=1 python bench/credentials.py [--n 8] [--json bench/results/credentials.json]

The images are scenes renders (the default models' world) at their native 64×64, and the same renders
enlarged 4× to 256×256 with Lanczos as `--upscale 4` does, each saved as kaiga saves an output (PNG with
the `parameters` and `kaiga` text chunks, and the invisible watermark), then signed with a throwaway identity
(`init_signing` in a temporary folder), without a thumbnail. The manifest holds the c2pa.created action, the model
assertion, the soft binding (the watermark's payload) and the certificate chain, so its size does not depend on the
image (c2pa reserves a fixed-size box for the signature): see bench/results/credentials.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image

from kaiga.data.render import render
from kaiga.data.world import sample_scene
from kaiga.metadata import GenerationRecord, png_bytes
from kaiga.provenance.credentials import init_signing, read_credentials, sign_png
from kaiga.provenance.watermark import embed, payload_of
from kaiga.version import __version__


def measure(n: int, side: int, home: Path) -> dict:
    plain, signed, ms, unmarked = [], [], [], []
    for i in range(n):
        rng = np.random.default_rng(i)
        image = render(sample_scene(rng), rng)
        if image.size[0] != side:
            image = image.resize((side, side), Image.LANCZOS)
        record = GenerationRecord(prompt=f"scene {i}", seed=i, sampler="ddim", steps=20, guidance=3.0, width=64,
                                  height=64, upscale=side // 64, model="scenes-diffusion", model_hash="0123456789")
        # as the Studio writes it: marked, and the record saying the payload (the manifest's soft binding)
        payload = payload_of(record)
        unmarked.append(len(png_bytes(image, record)))
        image = embed(image, payload)
        record = record.model_copy(update={"extra": {"watermark": f"{payload:08x}"}})
        data = png_bytes(image, record)
        t0 = time.perf_counter()
        out = sign_png(data, record, home=home)
        ms.append((time.perf_counter() - t0) * 1000)
        assert read_credentials(out, home=home)["status"] == "trusted"
        plain.append(len(data))
        signed.append(len(out))
    added = [s - p for s, p in zip(signed, plain)]
    return {
        "side": side,
        "images": n,
        "png_bytes_unmarked_median": statistics.median(unmarked),  # before the watermark: its cost in PNG bytes
        "png_bytes_median": statistics.median(plain),
        "signed_bytes_median": statistics.median(signed),
        "manifest_bytes_median": statistics.median(added),
        "manifest_bytes_range": [min(added), max(added)],
        "size_ratio_median": round(statistics.median(s / p for s, p in zip(signed, plain)), 3),
        "sign_ms_median": round(statistics.median(ms), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="images per size")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "credentials.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        init_signing(Path(home))
        sizes = [measure(args.n, side, Path(home)) for side in (64, 256)]
    result = {
        "schema": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": {"kaiga": __version__, "c2pa_python": metadata.version("c2pa-python"), "python": platform.python_version(),
                        "machine": platform.machine()},
        "settings": {"images": "scenes renders; 256 = 64 enlarged 4x (Lanczos)", "thumbnail": False,
                     "algorithm": "ES256", "timestamp": None},
        "sizes": sizes,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    for s in sizes:
        print(f"{s['side']}²: PNG {s['png_bytes_median']} B -> signed {s['signed_bytes_median']} B "
              f"(+{s['manifest_bytes_median']} B, x{s['size_ratio_median']}), signing {s['sign_ms_median']} ms")


if __name__ == "__main__":
    main()
