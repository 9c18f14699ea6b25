"""Schema fuzzing: schemathesis sends valid and invalid requests to every operation of a real server.

Whatever routes `/openapi.json` lists when the test runs are covered (none is named here), and no
request may get a 5xx. Generation requests are made cheap before they are sent (few steps, small
images, few images) so the worker keeps up, but only where the value was valid: out-of-range values
go through as generated, so the 400 paths are fuzzed as well.
"""

from __future__ import annotations

import os
import re

import httpx
import pytest
import schemathesis
import torch
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from kaiga.server import ServerSettings, create_app
from tests.server.conftest import RunningServer

# Cheap stand-ins for valid but slow values: field -> (lowest valid, highest valid, what to send).
# The ranges are those of GenerationRequest and of the tiny model (sizes: multiples of 16, at most 256).
CHEAP = {
    "steps": (1, 150, 2),
    "n": (1, 16, 2),
    "batch_size": (1, 16, 2),  # A1111
    "n_iter": (1, 16, 1),  # A1111
    "width": (16, 256, 32),
    "height": (16, 256, 32),
    "upscale": (1, 8, 1),
}
# Fuzzed examples per operation (on top of schemathesis's coverage cases, which it makes from the
# schema whatever this says): 8 keeps the file under 90 s on a busy 2-core machine; hunt with more.
EXAMPLES = int(os.environ.get("KAIGA_FUZZ_EXAMPLES", "8"))
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")


def cheapen(body: object) -> object:
    """`body` with slow-but-valid generation values replaced by fast ones (nested objects too)."""
    if isinstance(body, list):
        return [cheapen(v) for v in body]
    if not isinstance(body, dict):
        return body
    out = {}
    for key, value in body.items():
        if key in CHEAP and type(value) is int and CHEAP[key][0] <= value <= CHEAP[key][1] and \
                (key not in ("width", "height") or value % 16 == 0):
            value = CHEAP[key][2]
        elif key == "size" and isinstance(value, str) and (m := _SIZE.match(value)) and \
                all(16 <= int(v) <= 256 and int(v) % 16 == 0 for v in m.groups()):
            value = "32x32"
        elif key == "quality" and "steps" not in body:
            out["steps"] = CHEAP["steps"][2]  # quality alone means 10-40 steps
        else:
            value = cheapen(value)
        out[key] = value
    return out


# The schema of the app as built now, so the operations are whatever routes exist when the tests run
# (test_schema_is_the_servers checks that the running server serves this very schema). Built here
# rather than fetched through a fixture: schemathesis.pytest.from_fixture fails on pytest 9.2
# ('Function' object has no attribute '_nodeid').
APP_SCHEMA = create_app(ServerSettings()).openapi()
schema = schemathesis.openapi.from_dict(APP_SCHEMA)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, tiny_model_dir):
    """One warm server for all operations (the model loaded), so each case costs a request, not a start."""
    # wait_timeout_s: a synchronous request stuck behind fuzzed jobs answers 504 (and fails the test)
    # rather than hang; the cheapened requests never come near it
    # KAIGA_FUZZ_DB_URL: fuzz on that (empty) database instead of SQLite; PostgreSQL is the stricter
    # (string lengths, NUL characters), so it finds more
    settings = ServerSettings(data_dir=tmp_path_factory.mktemp("fuzz"), default_model=str(tiny_model_dir),
                              db_url=os.environ.get("KAIGA_FUZZ_DB_URL") or None,
                              poll_s=0.05, max_queued=500, wait_timeout_s=60)
    server = RunningServer(settings).start()
    torch.set_num_threads(1)
    job = httpx.post(f"{server.url}/v1/jobs", json={"prompt": "warm up", "steps": 1}).json()
    assert server.wait_for_job(job["id"], timeout=120)["status"] == "done"  # the model loads: fails, never hangs
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # after the root conftest's per-test torch.set_num_threads(2): the server's worker runs in this
    # process, and two torch threads on a busy 2-core machine spin (a 20-step job took 30 s, not 0.3 s)
    torch.set_num_threads(1)


def test_schema_is_the_servers(fuzz_server):
    assert httpx.get(f"{fuzz_server.url}/openapi.json").json() == APP_SCHEMA


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_server_error(case, fuzz_server):
    if isinstance(case.body, (dict, list)):
        case.body = cheapen(case.body)
    case.call_and_validate(base_url=fuzz_server.url, checks=[not_a_server_error], timeout=90)


def test_cheapen_keeps_invalid_values():
    body = {"prompt": "x", "steps": 150, "n": 99, "size": "256x256", "extra": {"width": 248}, "quality": "hd"}
    assert cheapen(body) == {"prompt": "x", "steps": 2, "n": 99, "size": "32x32", "extra": {"width": 248},
                             "quality": "hd"}
    assert cheapen({"prompt": "x", "quality": "hd"}) == {"prompt": "x", "steps": 2, "quality": "hd"}


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/jobs", {"prompt": "a red\x00car", "steps": 1}),
    ("POST", "/v1/jobs", {"prompt": "a red car", "steps": 1, "user": "ann\x00"}),
    ("POST", "/v1/images/generations", {"prompt": "a red car", "negative_prompt": "\x00", "steps": 1}),
    ("POST", "/sdapi/v1/txt2img", {"prompt": "a red car\x00", "steps": 1}),
    ("GET", f"/v1/gallery/images/{2**31}", None),
    ("GET", f"/v1/gallery/images?board={2**40}", None),
])
def test_found_by_fuzzing_on_postgresql(serve, database_url, method, path, body):
    # 500s that fuzzing found on PostgreSQL: it cannot store NUL in a text column (the job's or its
    # image's row failed to insert, or the job failed after it was accepted), and its INTEGER ids
    # are 32-bit (a larger id failed in the query). Each is now a 400 naming the field.
    server = serve(db_url=database_url)
    r = httpx.request(method, server.url + path, json=body)
    assert r.status_code == 400, r.text
    assert server.state.queue.depth() == 0
