"""`kaiga audit memorisation`: generate with a model, embed its training set, find near-copies, write the result.

The images are generated as `kaiga eval` generates them (the model itself, many prompts per batch, no
watermark and no safety blur): the audit measures the model, and an invisible watermark or a blurred
image would only add noise to the distances.

Example:
    >>> from pathlib import Path; import tempfile
    >>> from kaiga.data.dataset import write_scenes
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = write_scenes(d / "data", n=8, seed=0)
    >>> r = run_memorisation("scenes-gan", d / "data", d / "out", n=4, calibration_n=20)
    >>> r["n_generated"], (d / "out" / "memorisation.json").is_file()
    (4, True)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from kaiga.audit.memorisation import (
    CALIBRATION_SEED,
    Calibration,
    audit,
    calibrate,
    calibration_renders,
    embed,
    pairs_grid,
)
from kaiga.data.dataset import DatasetError, read_metadata

JSON_FILE = "memorisation.json"
GRID_FILE = "memorisation-flagged.png"
GRID_PAIRS = 32  # flagged pairs shown at most (the worst first)


class MemorisationError(ValueError):
    """Input the audit cannot use, said in one line."""


def read_prompts(prompts_file: Path | None, examples, n: int, seed: int) -> list[str]:
    """`n` prompts: the file's lines in turn, or the first captions of `n` dataset examples drawn without
    replacement (with replacement when the dataset is smaller)."""
    if prompts_file is not None:
        lines = [line.strip() for line in Path(prompts_file).read_text(encoding="utf-8").splitlines() if line.strip()]
        if not lines:
            raise MemorisationError(f"--prompts: {prompts_file} has no prompt (one a line)")
        return [lines[i % len(lines)] for i in range(n)]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(examples), size=n, replace=n > len(examples))
    return [examples[i].captions[0] for i in pick]


def run_memorisation(model: str, data: Path, out_dir: Path, n: int = 200, prompts_file: Path | None = None,
                     k: int = 3, false_flag_rate: float = 0.01, calibration_n: int = 500, seed: int = 0,
                     console=None) -> dict:
    """The whole audit; writes `out_dir`/memorisation.json (and the grid of flagged pairs when any)."""
    from kaiga.eval.alignment import model_generate
    from kaiga.eval.readout import ReadoutNet
    from kaiga.model_files import ModelError
    from kaiga.studio import Studio

    try:
        examples = read_metadata(data)
    except DatasetError as e:
        raise MemorisationError(f"--data: {e}") from None
    prompts = read_prompts(prompts_file, examples, n, seed)
    try:
        loaded = Studio().load(model)
    except ModelError as e:
        raise MemorisationError(f"--model: {e}") from None
    judge = ReadoutNet.load()
    from rich.progress import Progress

    with Progress(console=console, transient=True, disable=console is None) as bar:
        task = bar.add_task("generating", total=n)
        generate = model_generate(loaded.model, on_image=lambda done: bar.update(task, completed=done))
        seeds = [seed + i for i in range(n)]
        images = generate(prompts, seeds)
        task = bar.add_task("embedding the training set", total=len(examples))
        train = embed([Image.open(e.path).convert("RGB") for e in examples], judge,
                      progress=lambda m: bar.advance(task, m))
        generated = embed(images, judge)
        task = bar.add_task("calibrating", total=1)
        cal = calibrate(embed(calibration_renders(calibration_n), judge), train, false_flag_rate,
                        source=f"fresh scenes renders (seed {CALIBRATION_SEED})")
        bar.advance(task)
        task = bar.add_task("nearest neighbours", total=n)
        result = audit(generated, train, cal, k=k, progress=lambda m: bar.advance(task, m))
    return write_result(result, loaded, data, examples, prompts, seeds, images, out_dir, cal)


def write_result(result: dict, loaded, data: Path, examples, prompts, seeds, images, out_dir: Path,
                 cal: Calibration) -> dict:
    """Name files, prompts and seeds in the rows, write the JSON and the grid; return the result."""
    root = Path(data).resolve()
    for row in result["images"]:
        i = row["generated"]
        row["prompt"], row["seed"] = prompts[i], seeds[i]
        for near in row["neighbours"]:
            near["file"] = str(examples[near["train"]].path.relative_to(root))
    result = {"model": loaded.ref.name, "model_hash": loaded.hash, "data": str(data)} | result
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    worst = sorted(result["flagged"], key=lambda r: r["neighbours"][0]["score"])[:GRID_PAIRS]
    if worst:
        pairs = [(images[r["generated"]], Image.open(examples[r["neighbours"][0]["train"]].path)) for r in worst]
        pairs_grid(pairs).save(out_dir / GRID_FILE)
    (out_dir / JSON_FILE).write_text(json.dumps(result, indent=1) + "\n")
    return result

