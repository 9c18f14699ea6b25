"""Does a warm start help the live preview? Alignment and time of frames drawn cold against frames redrawn from
the previous frame (kaiga.live: `LiveSettings.warm_start`), on the alignment suite, judged by the readout judge.

For each suite prompt and seed, the "previous frame" is the picture of the prompt without its last word (what was
on screen just before the last word was typed); the warm frame redraws it at each `--strength` for the whole
prompt; the cold frame draws the whole prompt from noise. Same model, steps and seed for all. Scores are the
suite's (the share of images the judge reads as showing what the prompt asks for), so they are comparable with
`kaiga eval alignment`'s; the time is one frame at batch 1.

Usage:
    python bench/live_warm.py [--model NAME] [--steps 20] [--strength 0.5 0.7] [--every 2] [--json bench/results/live_warm.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from kaiga.eval.alignment import evaluate_alignment
from kaiga.eval.prompts import prompt_suite
from kaiga.eval.readout import ReadoutNet
from kaiga.studio import Studio

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "live_warm.json"


def before_last_word(prompt: str) -> str:
    """The prompt as it stood before its last word was typed.

    >>> before_last_word("a red car in the snow")
    'a red car in the'
    """
    return prompt.rsplit(" ", 1)[0] if " " in prompt else prompt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--strength", type=float, nargs="+", default=[0.5, 0.7])
    ap.add_argument("--every", type=int, default=2, help="score every Nth prompt of the suite (2: half of it)")
    ap.add_argument("--samples", type=int, default=2, help="seeds per prompt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    studio = Studio(watermark=False)  # the models themselves, as kaiga eval measures them
    suite = prompt_suite()[:: args.every]
    readout = ReadoutNet.load()  # the bundled judge
    common = {"model": args.model, "steps": args.steps}
    previous: dict[tuple[str, int], object] = {}
    timings: dict[str, list[float]] = {}

    def timed(name: str, make):
        t0 = time.perf_counter()
        image = make()
        timings.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
        return image

    def cold(prompts, seeds):
        return [timed("cold", lambda: studio.generate(p, seed=s, **common)[0].image) for p, s in zip(prompts, seeds)]

    def warm(strength):
        def make(prompts, seeds):
            out = []
            for p, s in zip(prompts, seeds):
                key = (before_last_word(p), s)
                if key not in previous:
                    previous[key] = studio.generate(key[0], seed=s, **common)[0].image
                out.append(timed(f"warm {strength}", lambda: studio.vary(
                    previous[key], faces_consent=True, prompt=p, seed=s, strength=strength, **common)[0].image))
            return out
        return make

    rows = {}
    for name, generate in (("cold", cold), *((f"warm {s}", warm(s)) for s in args.strength)):
        result, _ = evaluate_alignment(generate, readout, k=args.samples, suite=suite)
        ms = sorted(timings[name])
        rows[name] = {"seen": result["seen"]["overall"], "held_out": (result["held_out"] or {}).get("overall"),
                      "frame_ms_median": round(ms[len(ms) // 2], 1)}
        print(f"{name}: alignment seen {rows[name]['seen']:.3f}, held-out {rows[name]['held_out']}, "
              f"{rows[name]['frame_ms_median']:.0f} ms a frame", flush=True)
    out = {"bench": "live_warm", "model": args.model or "default", "steps": args.steps, "prompts": len(suite),
           "samples_per_prompt": args.samples, "threads": args.threads, "results": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"-> {args.json}")


if __name__ == "__main__":
    main()
