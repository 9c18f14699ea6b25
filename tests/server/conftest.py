"""A real kaiga server (uvicorn, in a thread, on a free loopback port) over the tiny test model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch
import uvicorn

from kaiga.server import ServerSettings, create_app


class RunningServer:
    """uvicorn serving `create_app(settings)` in a background thread."""

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on such sockets; without it each
        # response waits ~40 ms for a delayed ACK (Nagle)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))  # the kernel picks a free port; no race with other tests
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    @property
    def state(self):
        return self.app.state.kaiga

    def wait_for_job(self, job_id: str, timeout: float = 120) -> dict:
        """Poll GET /v1/jobs/{id} until the job is done, failed or cancelled; return it."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = httpx.get(f"{self.url}/v1/jobs/{job_id}").json()
            if job["status"] in ("done", "failed", "cancelled"):
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture
def serve(tmp_path, tiny_model_dir):
    # One torch thread: the server's own threads (event loop, worker, thread pool) share the cores;
    # measured on a busy 2-core machine, two torch threads made a 10-step job 50x slower (spinning).
    torch.set_num_threads(1)
    """serve(**settings) -> a started RunningServer with the tiny model as default; stopped after the test."""
    servers = []

    def start(**overrides) -> RunningServer:
        settings = ServerSettings(**({"data_dir": tmp_path / f"server{len(servers)}", "default_model": str(tiny_model_dir),
                                      "poll_s": 0.05} | overrides))
        server = RunningServer(settings).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(serve):
    """A server without auth, worker running."""
    return serve()




def kaiga(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The `kaiga` command as a person runs it (a subprocess; KAIGA_HOME is the test's)."""
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture
def run_kaiga():
    def run(*args: str) -> subprocess.CompletedProcess:
        r = kaiga(*args)
        assert r.returncode == 0, r.stderr
        return r

    return run


@pytest.fixture
def watercolor_png() -> str:
    """A watercolor scenes render as base64 PNG: what `sref` reads the style of."""
    import base64
    import io

    import numpy as np

    from kaiga.data.render import render
    from kaiga.data.world import Layout, Scene, SceneObject

    image = render(Scene((SceneObject("dog", "yellow"),), Layout.SINGLE, "beach", "clear", "day", "watercolor"),
                   np.random.default_rng(2))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()
