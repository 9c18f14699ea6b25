"""Ship a distilled student (`kaiga train distill --out RUN`) as the bundled model `scenes-fast`: its own UNet,
and the teacher's autoencoder, text encoder, tokenizer and scheduler shared (`shares_with` in its kaiga.json, read
by kaiga/families/diffusion/folder.py), so the shipped weights grow by one UNet, not by a second copy of the rest.

Refuses when a shared part of RUN differs from the teacher's bundled one (a tensor, the tokenizer, a scheduler setting): the student would then not be what it
was trained as.

Usage:
    .venv/bin/python scripts/ship_scenes_fast.py runs/fast [--name scenes-fast]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kaiga.paths import BUNDLED_DIR  # noqa: E402

OWN = ("unet",)
SHARED_WEIGHTS = {"vae": "diffusion_pytorch_model.safetensors", "text_encoder": "model.safetensors"}
TOP_FILES = ("kaiga.json", "model_index.json", "card.json")


def _settings(path: Path) -> dict:
    """A diffusers config's settings, without the keys that name the writing library (`_diffusers_version`)."""
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}


def _same_tensors(a: Path, b: Path) -> bool:
    """Whether two safetensors files hold the same tensors, bit for bit (their headers' metadata may differ)."""
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(x[k].dtype == y[k].dtype and x[k].equal(y[k]) for k in x)


def same_parts(run: Path, teacher: Path) -> list[str]:
    """The parts RUN holds that are not the teacher's (empty when every shared part is the same)."""
    differ = [c for c, f in SHARED_WEIGHTS.items() if not _same_tensors(run / c / f, teacher / c / f)]
    if (run / "tokenizer/tokenizer.json").read_bytes() != (teacher / "tokenizer/tokenizer.json").read_bytes():
        differ.append("tokenizer")
    run_config, teacher_config = (_settings(d / "scheduler/scheduler_config.json") for d in (run, teacher))
    if run_config != teacher_config:
        differ.append("scheduler")
    return differ


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the distillation's output folder (kaiga train distill --out)")
    parser.add_argument("--name", default="scenes-fast", help="the bundled model's name")
    args = parser.parse_args()
    info = json.loads((args.run / "kaiga.json").read_text())
    teacher_name = info.get("distilled_from", {}).get("model")
    if not teacher_name or not (BUNDLED_DIR / teacher_name).is_dir():
        print(f"ship_scenes_fast: {args.run} was not distilled from a bundled model (distilled_from: "
              f"{teacher_name!r})", file=sys.stderr)
        return 2
    teacher = BUNDLED_DIR / teacher_name
    if differ := same_parts(args.run, teacher):
        print(f"ship_scenes_fast: {args.run}'s {', '.join(differ)} differ from {teacher}'s: not shareable",
              file=sys.stderr)
        return 2
    out = BUNDLED_DIR / args.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    for part in OWN:
        shutil.copytree(args.run / part, out / part)
        config = out / part / "config.json"  # diffusers records where it loaded from: a path on this machine
        config.write_text(json.dumps({k: v for k, v in json.loads(config.read_text()).items()
                                      if k != "_name_or_path"}, indent=2) + "\n")
    for name in TOP_FILES:
        shutil.copy2(args.run / name, out / name)
    (out / "kaiga.json").write_text(json.dumps({**info, "shares_with": teacher_name}, indent=2))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {size / 1e6:.1f} MB (its UNet; {', '.join(SHARED_WEIGHTS)}, tokenizer and scheduler from "
          f"{teacher_name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
