"""`kaiga live` as a person runs it: piped (a line per update), and in a real pseudo-terminal (keys typed one by
one, the picture drawn in ANSI colour, Enter keeps the frame, Esc leaves)."""

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from kaiga.metadata import record_of

KAIGA = [sys.executable, "-m", "kaiga"]


def _env(tmp_path) -> dict:
    return {**os.environ, "KAIGA_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", "KAIGA_SIGNING": "off"}


def test_piped_updates_give_a_line_each(tmp_path, tiny_model_dir):
    lines = "a red car\na red car \n{\"seed\": 4}\n{\"steps\": 0}\n{\"seed\": 4\na blue car\n"
    r = subprocess.run([*KAIGA, "live", "--model", str(tiny_model_dir), "--steps", "2", "--out", str(tmp_path / "out")],
                       input=lines, capture_output=True, text=True, env=_env(tmp_path), timeout=180)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert re.match(r"frame 1: \d+ ms, [\d.]+ fps  'a red car' seed 0  .+\.png$", out[0]), out
    assert out[1] == "frame 2: skipped (the prompt barely moved: similarity 1.000)"
    assert "seed 4" in out[2] and "'a blue car' seed 4" in out[3] and len(out) == 4
    assert "error: steps: must be between 1 and 150 (got 0)" in r.stderr and "not valid JSON" in r.stderr
    kept = sorted((tmp_path / "out").glob("*.png"))
    assert sorted(record_of(p).prompt for p in kept) == ["a blue car", "a red car", "a red car "]


def _read_until(fd: int, pattern: str, timeout: float = 120) -> str:
    seen, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if re.search(pattern, seen.decode(errors="ignore")):
                return seen.decode(errors="ignore")
    raise AssertionError(f"{pattern!r} not seen; the screen showed: {seen.decode(errors='ignore')[-500:]!r}")


def test_in_a_terminal_the_picture_follows_the_keys(tmp_path, tiny_model_dir):
    pid, fd = pty.fork()
    if pid == 0:  # the child: kaiga live on the pseudo-terminal
        os.chdir(tmp_path)
        os.execvpe(sys.executable, [*KAIGA, "live", "--model", str(tiny_model_dir), "--steps", "1", "--seed", "2",
                                    "--columns", "16"], _env(tmp_path))
    try:
        _read_until(fd, "type a prompt")
        for key in "a red car":
            os.write(fd, key.encode())
        screen = _read_until(fd, r"frame \d+: \d+ ms")
        assert "\x1b[38;2;" in screen and "▀" in screen  # the picture, in 24-bit colour half blocks
        assert "> a red car" in screen
        os.write(fd, b"\r")  # Enter keeps the frame
        _read_until(fd, r"kept .*\.png")
        os.write(fd, b"\x1b")  # Esc leaves
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    kept = list(Path(tmp_path, "outputs").glob("live-*.png"))
    assert [record_of(p).prompt for p in kept] == ["a red car"]
