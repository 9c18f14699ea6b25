"""What one training step of the v6 denoiser costs on this machine, in float32 and under bfloat16 autocast.

The step of `kaiga train diffusion --size v6` at the batch of scripts/train_v6.sh: the frozen
all-MiniLM-L6-v2 reads the batch's captions, the UNet predicts v on 16×16×8 latents, backward, AdamW.
Each precision (`--precision fp32|bf16` of `kaiga train diffusion`) is timed in the same process,
interleaved, after warm-up steps; the median of each is reported with the ratio bf16/fp32, and the
text encoder's share of an fp32 step. The latents are random (the step's cost does not depend on
their values); the captions are real ones from a scenes dataset when --data is given.

Usage:
    OMP_NUM_THREADS=2 python bench/train_step.py --threads 2 [--batch-size 64] [--repeats 5]
    python bench/train_step.py --quick   # smoke run: batch 4, one repeat
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from kaiga.families.diffusion.losses import diffusion_loss
from kaiga.families.diffusion.model import DiffusionStage, LatentDiffusion
from kaiga.train.commands import diffusion_config

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "train_step.json"
CAPTION = "a red car on the left of a white house in the city at night, watercolor painting"


def _captions(data: Path | None, n: int) -> list[str]:
    if data is None:
        return [CAPTION] * n
    texts = []
    for line in (data / "metadata.jsonl").open():
        text = json.loads(line)["text"]
        texts += text if isinstance(text, list) else [text]
        if len(texts) >= n:
            return texts[:n]
    return (texts * n)[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.batch_size, args.repeats = 4, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = LatentDiffusion.create(diffusion_config("v6"))
    model.set_stage(DiffusionStage.DENOISER)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = model.tokenize(_captions(args.data, args.batch_size))
    c = model.unet.config
    latents = torch.randn(args.batch_size, c.in_channels, c.sample_size, c.sample_size)
    alphas = model._training_schedule()

    def step(precision: str) -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            states = model.text_encoder(ids)[0]
            t = torch.randint(0, len(alphas), (len(latents),))
            loss = diffusion_loss(model.unet, alphas, latents, states, torch.randn_like(latents), t)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return time.perf_counter() - t0

    def text_only() -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            model.text_encoder(ids)
        return time.perf_counter() - t0

    for precision in ("fp32", "bf16"):  # warm-up: first calls allocate and pick kernels
        step(precision)
        step(precision)
    times = {"fp32": [], "bf16": [], "text_fp32": []}
    for _ in range(args.repeats):
        for precision in ("fp32", "bf16"):
            times[precision].append(step(precision))
        times["text_fp32"].append(text_only())
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "schema": 1, "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "command": "python bench/train_step.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                                            if v not in (None, False) and k != "json"),
        "batch_size": args.batch_size, "repeats": args.repeats,
        "seconds_per_step": {"fp32": round(med["fp32"], 3), "bf16": round(med["bf16"], 3)},
        "bf16_over_fp32": round(med["bf16"] / med["fp32"], 3),
        "text_encoder_share_fp32": round(med["text_fp32"] / med["fp32"], 3),
        "runs": {k: [round(x, 3) for x in v] for k, v in times.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("seconds_per_step", "bf16_over_fp32", "text_encoder_share_fp32")}))


if __name__ == "__main__":
    main()
