"""API overhead of `kaiga serve`: what a request costs beyond generating its image.

Interleaves, in one process on one model: (a) `Studio.generate` called directly, and (b) the same
request through a real uvicorn server, with the official `openai` client and with a plain httpx
client (b64_json both). Overhead = median(b) − median(a); and, steadier on a busy machine, the
median over requests of (latency − the generation time the image's own record holds). It includes HTTP,
JSON, the database (job row, claim, finish, image row; SQLite in WAL mode), PNG encoding with the
record, the content-addressed file write and base64.

Usage:
    python bench/server.py [--model NAME|PATH] [--steps 1] [--repeats 30] [--json bench/results/server.json]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import openai
import torch
import uvicorn

from kaiga.metadata import read_metadata
from kaiga.server import ServerSettings, create_app
from kaiga.studio import Studio

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "server.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="kaiga-bench-"))
    settings = ServerSettings(data_dir=home, default_model=args.model, poll_s=0.5)
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # so asyncio sets TCP_NODELAY
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    studio = Studio()
    model = str(app.state.kaiga.catalog.default.path)
    request = {"prompt": "a red car in the snow", "steps": args.steps, "seed": 1}
    size = f"{args.size}x{args.size}"

    def direct():
        studio.generate(request["prompt"], steps=args.steps, seed=1, model=model, width=args.size, height=args.size)

    paired: list[float] = []  # per request: latency minus that request's own generation time

    def http():
        t0 = time.perf_counter()
        r = client.images.generate(prompt=request["prompt"], size=size, response_format="b64_json",
                                   extra_body={"steps": args.steps, "seed": 1})
        latency = (time.perf_counter() - t0) * 1000
        record = read_metadata(base64.b64decode(r.data[0].b64_json)).record
        paired.append(latency - record.timings["ms_per_image"])

    plain = httpx.Client(base_url=url)
    body = {"prompt": request["prompt"], "size": size, "response_format": "b64_json", "steps": args.steps, "seed": 1}

    def raw_http():
        plain.post("/v1/images/generations", json=body).raise_for_status()

    for f in (direct, http, raw_http, direct, http, raw_http):  # warm up: model load, first connections
        f()
    paired.clear()
    times: dict[str, list[float]] = {"direct": [], "openai_http": [], "httpx_http": []}
    for _ in range(args.repeats):
        for name, f in (("direct", direct), ("openai_http", http), ("httpx_http", raw_http)):
            t0 = time.perf_counter()
            f()
            times[name].append((time.perf_counter() - t0) * 1000)
    server.should_exit = True
    thread.join(30)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "settings": {"model": app.state.kaiga.catalog.default.name, "steps": args.steps, "size": args.size,
                     "repeats": args.repeats, "n": 1, "response_format": "b64_json", "database": "sqlite (WAL)"},
        "environment": {"torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
                        "cores": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)},  # a busy machine inflates every figure
        "median_ms": {k: round(v, 2) for k, v in med.items()},
        "p90_ms": {k: round(sorted(v)[int(0.9 * len(v)) - 1], 2) for k, v in times.items()},
        "overhead_ms": {"openai_client": round(med["openai_http"] - med["direct"], 2),
                        "httpx_client": round(med["httpx_http"] - med["direct"], 2),
                        # the steadiest figure on a busy machine: each request against its own generation
                        "openai_client_paired": round(statistics.median(paired), 2)},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
