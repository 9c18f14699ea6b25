"""Every path that any `kaiga` command takes, given wrong: one line naming it, exit code 2, no traceback.

The commands and their path options are read from the Typer app itself, so a new command is walked
as soon as it exists; `KINDS` says what each path must be (a test fails until a new one is listed).
Each case runs the CLI with exactly one bad path and every other required value good, so it must be
refused before any work: nothing is generated or trained here. The cases run in a few processes of
their own, each calling the Typer app once per case as `python -m kaiga.cli` would (an exception
that escapes it is printed as Python prints it, a traceback): one process per case would spend a
minute starting Python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import typer
from PIL import Image

from kaiga.cli import app

# (command, option or argument name) -> what the path must be:
#   in-file, in-folder, in-any: read, must exist (a file, a folder, either);
#   in-file-optional, in-folder-optional: read if it exists (the command does without), so only the wrong kind is bad;
#   out-file, out-folder: written (made if need be); out-file-or-folder: a .png, or a folder to write one in;
#   model: a model's name or path.
KINDS = {
    ("generate", "--init"): "in-file",
    ("generate", "--mask"): "in-file",
    ("generate", "--config"): "in-folder",
    ("generate", "--out"): "out-folder",
    ("explain", "--out"): "out-file-or-folder",
    ("grid", "--out"): "out-folder",
    **{(command, "image"): "in-image" for command in ("vary", "pan", "zoom")},
    **{(command, "--out"): "out-folder" for command in ("vary", "pan", "zoom")},
    ("vary", "--region"): "in-image",
    ("describe", "image"): "in-image",
    ("upscale", "image"): "in-image",
    ("upscale", "--out"): "out-folder",
    ("blend", "images"): "in-image",
    ("blend", "--out"): "out-folder",
    ("generate", "--sref"): "in-image",
    ("info", "image"): "in-file",
    ("verify", "image"): "in-file",
    ("models", "paths"): "in-any",
    ("styles", "--import"): "in-file",
    ("data scenes", "--out"): "out-folder",
    ("data import", "source"): "in-folder",
    ("data import", "--out"): "out-folder",
    ("data import", "--consent"): "in-file",
    ("train autoencoder", "--data"): "in-folder",
    ("train autoencoder", "--out"): "out-folder",
    ("train autoencoder", "--init"): "in-folder",
    ("train diffusion", "--data"): "in-folder",
    ("train diffusion", "--out"): "out-folder",
    ("train diffusion", "--vae"): "in-folder",
    **{(f"train {family}", option): kind for family in ("vae", "gan", "transformer")
       for option, kind in (("--data", "in-folder"), ("--out", "out-folder"), ("--init", "model"))},
    ("train readout", "--out"): "out-folder",
    ("train watermark", "--out"): "out-folder",
    ("train upscaler", "--out"): "out-folder",
    **{(f"train {kind}", "--opt-out"): "in-file" for kind in ("autoencoder", "diffusion", "vae", "gan", "transformer",
                                                              "distill")},
    ("train distill", "--data"): "in-folder",
    ("train distill", "--out"): "out-folder",
    ("finetune", "--data"): "in-folder",
    ("live", "--out"): "out-folder",
    ("finetune", "--opt-out"): "in-file",
    ("data opt-out", "images"): "in-file",
    ("data opt-out", "--list"): "out-file",
    ("audit memorisation", "--data"): "in-folder",
    ("audit memorisation", "--out"): "out-folder",
    ("audit memorisation", "--prompts"): "in-file",
    ("audit bias", "--data"): "in-folder",
    ("audit bias", "--out"): "out-folder",
    ("eval alignment", "--json"): "out-file",
    ("eval alignment", "--grid"): "out-file",
    ("eval alignment", "--readout"): "in-folder",
    ("eval fidelity", "--json"): "out-file",
    ("eval fidelity", "--readout"): "in-folder",
    ("eval fidelity", "--features"): "in-file",
    ("eval families", "--json"): "out-file",
    ("eval report", "--out"): "out-file",
    ("eval report", "--results"): "in-folder-optional",
    ("eval report", "--bench"): "in-file-optional",
    ("eval report", "--families"): "in-file-optional",
    ("bench", "--json"): "out-file",
    ("campaign plan", "path"): "in-file",
    ("campaign run", "path"): "in-file",
    ("campaign run", "--out"): "out-folder",
    ("campaign export", "--out"): "out-folder",
    ("campaign more", "--out"): "out-folder",
    ("worker", "--data-dir"): "out-folder",
}

# Good values of required non-path parameters (any other required one: add it here).
GOOD = {"prompt": "a red car", "stage": "tokenizer", "model": "scenes-gan", "x": "steps=1,2", "name": "ad",
        "out_name": "toy"}
# Options that a path option needs beside it to mean anything (a mask masks an --init image).
NEEDS = {("generate", "--mask"): ("--init", "image")}


def _commands(command, words=()):
    """(words, click command) of every leaf command under `command`."""
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield " ".join(words), command
        return
    for name, sub in subcommands.items():
        yield from _commands(sub, (*words, name))


def _is_path(param) -> bool:
    annotation = param.type_descriptor.annotation
    return annotation is Path or getattr(annotation, "__args__", None) == (Path,)  # Path, list[Path]


def _name(param) -> str:
    return param.name if param.param_type_name == "argument" else param.opts[0]


COMMANDS = dict(_commands(typer.main.get_command(app)))
PATH_PARAMS = {(cmd, _name(p)) for cmd, command in COMMANDS.items() for p in command.params if _is_path(p)}


def test_every_path_parameter_says_what_it_must_be():
    assert PATH_PARAMS - set(KINDS) == set(), "a new path parameter: say in KINDS what it must be"
    assert set(KINDS) - PATH_PARAMS == set(), "KINDS names a parameter that is gone"


@pytest.fixture
def places(tmp_path):
    """Named places to point paths at, and the good value of each kind of required path."""
    (tmp_path / "a-file").write_text("not a folder\n")
    Image.new("RGB", (16, 16), "red").save(tmp_path / "an-image.png")
    (tmp_path / "a-folder").mkdir()
    if os.geteuid() == 0:  # root writes through permission bits: a place the kernel refuses instead
        read_only = Path("/sys/kaiga-test-read-only")
    else:
        read_only = tmp_path / "read-only"
        read_only.mkdir()
        read_only.chmod(0o555)
    yield {"file": tmp_path / "a-file", "folder": tmp_path / "a-folder", "missing": tmp_path / "missing",
           "read-only": read_only, "tmp": tmp_path, "image": tmp_path / "an-image.png"}
    if read_only.is_relative_to(tmp_path):
        read_only.chmod(0o755)


def bad_paths(kind: str, places: dict) -> list[Path]:
    file, folder, missing, read_only = places["file"], places["folder"], places["missing"], places["read-only"]
    return {
        "in-file": [missing / "x.png", folder, file / "x.png"],
        "in-image": [missing / "x.png", folder, file / "x.png"],
        "in-folder": [missing, file],
        "in-any": [missing],
        "in-file-optional": [folder],
        "in-folder-optional": [file],
        "out-file": [folder, file / "x.json", read_only / "x.json"],
        "out-folder": [file, file / "out", read_only / "out"],
        "out-file-or-folder": [file / "x.png", read_only / "x.png", read_only / "out", places["tmp"] / "x.jpg"],
        "model": [missing],
    }[kind]


def good_path(kind: str, places: dict) -> Path:
    return {"in-file": places["file"], "in-image": places["image"], "in-folder": places["folder"], "out-folder": places["tmp"] / "new-out",
            "out-file": places["tmp"] / "new.json"}[kind]


def argv(command: str, tested, bad: Path, places: dict) -> list[str]:
    """The command line with `bad` for `tested` and a good value for every other required parameter."""
    args = command.split()
    if (command, _name(tested)) in NEEDS:
        option, place = NEEDS[(command, _name(tested))]
        args += [option, str(places[place])]
    for param in COMMANDS[command].params:
        if param is tested:
            value = str(bad)
        elif not param.required:
            continue
        elif _is_path(param):
            value = str(good_path(KINDS[(command, _name(param))], places))
        else:
            assert param.name in GOOD, f"{command}: give a good value of the required {param.name} in GOOD"
            value = GOOD[param.name]
        args += [value] if param.param_type_name == "argument" else [param.opts[0], value]
    return args


# Runs the command lines given on stdin (a JSON list) one after another; prints each one's exit code and stderr.
RUN_MANY = """
import contextlib, io, json, sys, traceback
from kaiga.cli import app
results = []
for args in json.loads(sys.stdin.read()):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            app(args, prog_name="kaiga")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        except BaseException:
            traceback.print_exc()
            code = 1
    results.append({"code": code, "stderr": stderr.getvalue()})
print(json.dumps(results))
"""


def run_many(cases: list[list[str]], cwd: Path, processes: int = 3) -> list[dict]:
    """{"code", "stderr"} of each command line, run in `processes` processes side by side."""
    chunks = [cases[i::processes] for i in range(processes)]

    def run_chunk(chunk):
        r = subprocess.run([sys.executable, "-c", RUN_MANY], input=json.dumps(chunk), capture_output=True,
                           text=True, timeout=300, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert r.returncode == 0, r.stderr[-2000:]
        return json.loads(r.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(max_workers=processes) as pool:
        results = list(pool.map(run_chunk, chunks))
    order = [i for k in range(processes) for i in range(k, len(cases), processes)]
    by_case = dict(zip(order, [r for chunk in results for r in chunk]))
    return [by_case[i] for i in range(len(cases))]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "60"})


def test_every_bad_path_is_one_line_naming_it_and_exit_2(places):
    cases = [(bad, argv(command, param, bad, places))
             for command, cmd in COMMANDS.items() for param in cmd.params if _is_path(param)
             for bad in bad_paths(KINDS[(command, _name(param))], places)]
    assert len(cases) > 60  # every command was walked
    results = run_many([args for _, args in cases], places["tmp"])
    wrong = []
    for (bad, args), r in zip(cases, results):
        lines = r["stderr"].strip().splitlines()
        if r["code"] != 2 or "Traceback" in r["stderr"] or len(lines) != 1 or str(bad) not in lines[0]:
            wrong.append(f"kaiga {' '.join(args)}\n  -> exit {r['code']}: {r['stderr'].strip()[-600:]!r}")
    assert not wrong, f"{len(wrong)} of {len(cases)} bad paths not refused in one line:\n" + "\n".join(wrong)
    assert not (places["tmp"] / "new-out").exists()  # refused before anything was made


def test_explain_writes_into_a_folder(tiny_model_dir, tmp_path):
    r = run(["explain", "a red car", "--model", str(tiny_model_dir), "--seed", "3", "--out", str(tmp_path / "out")],
            tmp_path)
    assert r.returncode == 0, r.stderr
    written = tmp_path / "out" / "explain-0000000003-a-red-car.png"
    assert r.stdout.strip() == str(written) and written.is_file()


def test_an_empty_prompt_to_explain_is_one_line(tmp_path):
    r = run(["explain", ""], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("error: prompt")
