"""What `kaiga --help`, `--version` and each command's help show (issue 16, item 10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import typer.main

from kaiga.cli import app
from kaiga.version import __version__
from tests.test_cli_bad_paths import _commands

# Prints the help of every command given, as the entry point renders it, one JSON string per command.
HELP_OF_ALL = """
import contextlib, io, json, sys
from kaiga.cli import main
for words in json.loads(sys.argv[1]):
    text = io.StringIO()
    sys.argv = ["kaiga", *words, "--help"]
    with contextlib.redirect_stdout(text):
        try:
            main()
        except SystemExit:
            pass
    print(json.dumps([" ".join(words), text.getvalue()]))
"""


def test_version():
    r = subprocess.run([sys.executable, "-m", "kaiga.cli", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"kaiga {__version__}"


def test_no_flag_shows_a_value_type_in_any_help():
    commands = [name.split() for name, _ in _commands(typer.main.get_command(app))]
    words = [[], *sorted({tuple(c[:1]) for c in commands if len(c) > 1}), *commands]  # root, groups, leaves
    r = subprocess.run([sys.executable, "-c", HELP_OF_ALL, json.dumps([list(w) for w in words])], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr[-2000:]
    helps = dict(json.loads(line) for line in r.stdout.splitlines())
    assert len(helps) == len(words)
    for name, text in helps.items():
        assert "--help" in text, name
        assert "<bool>" not in text, f"kaiga {name} --help shows <bool>:\n{text}"
    assert "--version" in helps[""]
    assert "--grid " in helps["generate"] and "<int>" in helps["generate"]  # options that take values keep theirs


def test_every_train_option_has_help():
    commands = dict(_commands(typer.main.get_command(app)))
    for name, command in commands.items():
        if not name.startswith("train "):
            continue
        for param in command.params:
            assert param.help, f"kaiga {name} {param.opts[0]}: no help"
