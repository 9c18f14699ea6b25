"""The live preview's latency: a person typing prompts into `/v1/live`, timed from the last key to its frame.

A real server (uvicorn in this process, the default model unless --model) and the `websockets` client. Each
prompt is typed one character at a time, `--key-ms` apart (100 ms: a quick typist, about 120 words a minute),
every keystroke sent as an update; then the client waits for the frame of the whole prompt. Per prompt:
- `settle_ms`: from the last key sent to the frame of the full prompt shown: what a person waits for once they
  stop typing;
- `frames` drawn and `skipped` (prompts that barely moved), and how many keystrokes they answered.
Two servers in the same run: kaiga's live settings (debounce, similarity filter, superseded frames abandoned)
and the baseline that draws every keystroke to the end (debounce 0, no filter, nothing abandoned; messages that
came meanwhile are still merged, so it never falls behind by more than a frame), so the ratio of their settle
times is the settings' gain.

Usage:
    python bench/live.py [--model NAME] [--steps 20] [--key-ms 100] [--repeats 3] [--json bench/results/live.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "server"))
from conftest import RunningServer  # noqa: E402  (the tests' real uvicorn server on a free port)
from websockets.sync.client import connect  # noqa: E402

from kaiga.server import ServerSettings  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "live.json"
PROMPTS = ("a red car in the snow", "a small dog on the beach at sunset", "two yellow flowers in the desert",
           "a blue boat on a lake at night", "a green bicycle in the city in the rain")


def type_prompt(live, prompt: str, key_s: float, fields: dict) -> dict:
    """Type `prompt` into the open socket a key at a time; wait for its frame; what it took."""
    frames = skipped = 0
    sent_last = 0.0
    for i in range(1, len(prompt) + 1):
        live.send(json.dumps({**fields, "prompt": prompt[:i]}))
        sent_last = time.perf_counter()
        deadline = sent_last + key_s
        while (left := deadline - time.perf_counter()) > 0:  # frames that come while typing
            try:
                message = json.loads(live.recv(timeout=left))
            except TimeoutError:
                break
            frames += message["type"] == "frame"
            skipped += message["type"] == "skipped"
    while True:
        message = json.loads(live.recv(timeout=600))
        frames += message["type"] == "frame"
        skipped += message["type"] == "skipped"
        if message["type"] == "frame" and message["record"]["prompt"] == prompt:
            return {"prompt": prompt, "keys": len(prompt), "frames": frames, "skipped": skipped,
                    "settle_ms": round((time.perf_counter() - sent_last) * 1000, 1), "draw_ms": message["ms"]}


def summary(rows: list[dict]) -> dict:
    settle = [r["settle_ms"] for r in rows]
    return {"settle_ms_median": statistics.median(settle), "settle_ms_max": max(settle),
            "draw_ms_median": statistics.median(r["draw_ms"] for r in rows),
            "frames": sum(r["frames"] for r in rows), "skipped": sum(r["skipped"] for r in rows),
            "keys": sum(r["keys"] for r in rows), "prompts": rows}


def run(configs: dict[str, ServerSettings], steps: int, key_s: float, repeats: int, seed: int = 0) -> dict:
    """Every prompt typed into each server in turn (interleaved, so a busy moment of the machine falls on both)."""
    servers = {name: RunningServer(settings).start() for name, settings in configs.items()}
    rows: dict[str, list[dict]] = {name: [] for name in configs}
    fields = {"seed": seed, "steps": steps}
    try:
        sockets = {name: connect(s.url.replace("http://", "ws://") + "/v1/live", max_size=2**24)
                   for name, s in servers.items()}
        for name, live in sockets.items():
            json.loads(live.recv(timeout=60))
            type_prompt(live, "warm up", 0.0, fields)  # the model's load is not the typing's
        for _ in range(repeats):
            for prompt in PROMPTS:
                for name, live in sockets.items():
                    rows[name].append(type_prompt(live, prompt, key_s, fields))
        for live in sockets.values():
            live.close()
    finally:
        for server in servers.values():
            server.stop()
    return {name: summary(r) for name, r in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model name (default: the default model)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--key-ms", type=float, default=100.0, help="time between keys")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="times each prompt is typed into each server")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as home:
        base = {"run_worker": False, "default_model": args.model}
        configs = {"kaiga": ServerSettings(data_dir=Path(home) / "kaiga", **base),
                   "every_key": ServerSettings(data_dir=Path(home) / "every", live_debounce_ms=0, live_similarity=1.01,
                                               live_supersede=False, **base)}
        measured = run(configs, args.steps, args.key_ms / 1000, args.repeats)
    results = {}
    for name, settings in configs.items():
        results[name] = {"debounce_ms": settings.live_debounce_ms, "similarity": settings.live_similarity,
                         "supersede": settings.live_supersede, **measured[name]}
        print(f"{name}: settle {results[name]['settle_ms_median']:.0f} ms median "
              f"(max {results[name]['settle_ms_max']:.0f}), {results[name]['frames']} frames, "
              f"{results[name]['skipped']} skipped for {results[name]['keys']} keys", flush=True)
    out = {"bench": "live", "model": args.model or "default", "steps": args.steps, "key_ms": args.key_ms,
           "repeats": args.repeats,
           "threads": args.threads, "machine": platform.processor() or platform.machine(),
           "settle_ratio_every_key_over_kaiga": round(results["every_key"]["settle_ms_median"]
                                                      / results["kaiga"]["settle_ms_median"], 2),
           **results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"every key drawn / kaiga: {out['settle_ratio_every_key_over_kaiga']}x the wait  -> {args.json}")


if __name__ == "__main__":
    main()
