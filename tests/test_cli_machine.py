"""The machine a command runs on: --device, --threads and --db, checked and set before any work.

Issue 16, items 2 and 3: `--device cuda` on a CPU build and `serve --db notadb://` were tracebacks (the
device only after the model had loaded), and torch's default threads collapse beside a busy process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import typer.main

from kaiga import cli, cli_common
from kaiga.cli import app, default_threads
from tests.test_cli_bad_paths import _commands

# Runs `kaiga ARGS` in a process as the entry point does, then says whether a model was loaded (a check
# made "before any work" must fail before that) and torch's threads at the end.
RUN = """
import json, sys
import kaiga.model_files as model_files
loads = []
load_model = model_files.load_model
model_files.load_model = lambda *a, **k: loads.append(a) or load_model(*a, **k)  # before anything imports it
from kaiga.cli import main
sys.argv = ["kaiga", *json.loads(sys.argv[1])]
try:
    main()
    code = 0
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else int(e.code is not None)
torch = sys.modules.get("torch")
print(json.dumps({"code": code, "loaded": bool(loads), "threads": torch.get_num_threads() if torch else None}))
"""


def kaiga(*args: str, env: dict | None = None, cwd=None) -> tuple[dict, str]:
    r = subprocess.run([sys.executable, "-c", RUN, json.dumps(args)], capture_output=True, text=True, timeout=300,
                       cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    [line] = stderr.strip().splitlines()
    return line


def _unavailable() -> list[str]:
    mps = getattr(torch.backends, "mps", None)
    return [d for d, there in (("cuda", torch.cuda.is_available()), ("mps", mps is not None and mps.is_available()))
            if not there]


CASES = [(["generate", "a red car"], device) for device in _unavailable()] + [
    (command, device) for command in (["explain", "a red car"], ["serve"]) for device in _unavailable()[:1]]


@pytest.mark.parametrize("command, device", CASES)
def test_an_unavailable_device_is_one_line_before_any_model_loads(tmp_path, command, device):
    result, stderr = kaiga(*command, "--device", device, cwd=tmp_path)
    line = one_line(stderr)
    assert result["code"] == 2 and not result["loaded"]
    assert line.startswith(f"error: --device: {device} is not available") and "use cpu" in line
    assert not list(tmp_path.rglob("*.png"))


def test_a_device_that_is_no_device_is_named(tmp_path):
    result, stderr = kaiga("generate", "a red car", "--device", "tpu", cwd=tmp_path)
    assert result["code"] == 2 and not result["loaded"]
    assert one_line(stderr).startswith("error: --device: 'tpu' is not a device")


@pytest.mark.parametrize("command", [["generate", "a red car"], ["serve"], ["worker"], ["bench", "--quick"]])
def test_a_precision_that_is_none_is_one_line_before_any_model_loads(tmp_path, command):
    result, stderr = kaiga(*command, "--precision", "fp16", cwd=tmp_path)
    assert result["code"] == 2 and not result["loaded"]
    assert one_line(stderr) == "error: --precision: fp32 or bf16 (got 'fp16')"


@pytest.mark.parametrize("command", [["generate", "a red car"], ["serve"], ["worker"], ["bench", "--quick"],
                                     ["live", "a red car"]])
def test_a_backend_that_is_none_is_one_line_before_any_model_loads(tmp_path, command):
    result, stderr = kaiga(*command, "--backend", "onnx", cwd=tmp_path)
    assert result["code"] == 2 and not result["loaded"]
    assert one_line(stderr) == "error: --backend: eager or jit (got 'onnx')"


@pytest.mark.parametrize("db, message", [
    ("notadb://", "error: --db: notadb://: no database driver for 'notadb'"),
    ("not a url", "error: --db: 'not a url' is not a database URL"),
    ("postgresql://kaiga:secret@127.0.0.1:1/kaiga", "error: --db: cannot open postgresql+psycopg://kaiga:***@127.0.0.1:1/kaiga"),
])
def test_a_bad_db_is_one_line_naming_it_before_the_server_starts(db, message):
    result, stderr = kaiga("serve", "--db", db, "--port", "1")
    line = one_line(stderr)
    assert result["code"] == 2 and not result["loaded"] and line.startswith(message)
    assert "secret" not in line


def test_out_on_an_existing_file_is_refused_before_generating(tmp_path):
    file = tmp_path / "a-file"
    file.write_text("earlier work\n")
    result, stderr = kaiga("generate", "a red car", "--out", str(file), "--n", "16", "--steps", "150")
    assert result["code"] == 2 and not result["loaded"]
    assert one_line(stderr) == f"error: --out: {file} is a file, not a folder"
    assert file.read_text() == "earlier work\n"


def test_threads_are_set_before_generating(tmp_path):
    result, stderr = kaiga("generate", "a red car", "--steps", "1", "--threads", "2", "--out", str(tmp_path))
    assert result["code"] == 0 and result["loaded"], stderr
    assert result["threads"] == 2


# --- the default -----------------------------------------------------------------------------------

def test_the_default_leaves_busy_cores_alone_and_respects_omp_num_threads():
    assert default_threads({}, cores=2, busy=0) == 2
    assert default_threads({}, cores=2, busy=1) == 1  # the case that collapsed: one busy process on two cores
    assert default_threads({}, cores=2, busy=5) == 1
    assert default_threads({}, cores=64, busy=2) == cli.MAX_DEFAULT_THREADS
    assert default_threads({"OMP_NUM_THREADS": "3"}, cores=2, busy=1) == 3  # the user's word, even if more
    assert default_threads({"OMP_NUM_THREADS": "junk"}, cores=2, busy=0) == 2
    assert default_threads({"OMP_NUM_THREADS": "0"}, cores=2, busy=1) == 1


def test_use_threads_sets_torch_and_warns_when_cores_are_busy(monkeypatch, capsys):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cli_common, "_cores", lambda: 2)
    monkeypatch.setattr(cli_common, "_busy_cores", lambda: 1)
    try:
        assert cli._use_threads(None) == 1 and torch.get_num_threads() == 1
        assert capsys.readouterr().err == ""
        assert cli._use_threads(2) == 2 and torch.get_num_threads() == 2
        warning = capsys.readouterr().err
        assert "warning" in warning and "only 1 of 2 cores are free" in warning and "--threads 1" in warning
    finally:
        torch.set_num_threads(before)


def test_every_command_that_runs_torch_takes_threads():
    commands = dict(_commands(typer.main.get_command(app)))
    wanted = {name for name in commands
              if name in ("generate", "explain", "serve", "bench") or name.split()[0] in ("train", "eval")}
    wanted.discard("eval report")  # writes Markdown from JSON: no torch
    for name in wanted:
        [option] = [p for p in commands[name].params if "--threads" in getattr(p, "opts", ())]
        if name != "bench":  # bench's own: torch's choice, the same in the processes it starts
            assert "OMP_NUM_THREADS" in option.help and option.default is None, name
