"""`kaiga live`: the live preview in a terminal. Type a prompt; the picture follows as you type.

In a terminal (stdin and stdout both one) it takes the keys itself: the prompt line at the bottom, the image
above it drawn in colour with half-block characters (two pixels a character cell, 24-bit ANSI colour), and a
status line with the frame's time and the frame rate. Enter keeps the frame (a PNG in --out, with its record);
Esc, Ctrl-C or Ctrl-D leave. Typing is debounced and a frame whose prompt barely moved is skipped (kaiga.live).

Piped (a script, a test), each line of stdin is an update: a prompt, or a JSON object of request fields
(`{"seed": 4}`); each answer is one line on stdout (the frame, its time, and its PNG's path with --out), and a
refused update one line on stderr, after which the session goes on.

Why hand-written: the keys are read with termios (no dependency for one prompt line); the image is a few lines of
ANSI colour codes, which no library we use writes.
"""

from __future__ import annotations

import json
import logging
import os
import select
import sys
import time
from collections import deque
from pathlib import Path
from typing import Annotated, Optional

import typer

from kaiga.cli_options import request_options

LIVE_FIELDS = ("model", "seed", "steps", "guidance", "sampler", "negative_prompt", "style", "stylize", "chaos")
KEEP_KEYS, QUIT_KEYS, ERASE_KEYS = ("\r", "\n"), ("\x1b", "\x03", "\x04"), ("\x7f", "\x08")


def ansi_image(image, columns: int = 64) -> str:
    """`image` as lines of '▀' whose foreground is the upper pixel and background the lower one.

    >>> from PIL import Image
    >>> ansi_image(Image.new("RGB", (2, 2), (255, 0, 0)), columns=2).count("▀")
    2
    """
    rows = max(2, round(image.height * columns / image.width / 2) * 2)
    small = image.convert("RGB").resize((columns, rows))
    px = small.load()
    lines = []
    for y in range(0, rows, 2):
        cells = (f"\x1b[38;2;{px[x, y][0]};{px[x, y][1]};{px[x, y][2]}m"
                 f"\x1b[48;2;{px[x, y + 1][0]};{px[x, y + 1][1]};{px[x, y + 1][2]}m▀" for x in range(columns))
        lines.append("".join(cells) + "\x1b[0m")
    return "\n".join(lines)


class _Rate:
    """Frames per second over the last few frames."""

    def __init__(self, keep: int = 10):
        self.times: deque[float] = deque(maxlen=keep)

    def tick(self) -> None:
        self.times.append(time.perf_counter())

    @property
    def fps(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(1e-9, self.times[-1] - self.times[0])


@request_options(LIVE_FIELDS)
def live_cmd(
    prompt: Annotated[str, typer.Argument(help="The prompt to begin with; edit it as you type.")] = "",
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Keep frames here as PNGs with their records: each frame when piped, the frame on screen on Enter in a terminal (default there: outputs).")] = None,
    similarity: Annotated[float, typer.Option(min=0.0, max=1.01, help="Skip a frame whose prompt's text vector is at least this cosine-similar to the last one drawn (only the prompt changed); above 1 skips none.")] = 0.995,
    debounce_ms: Annotated[int, typer.Option("--debounce-ms", min=0, max=5000, help="In a terminal: how long the keys must rest before a frame starts.")] = 80,
    warm_start: Annotated[float, typer.Option("--warm-start", min=0.0, max=0.95, help="When only the prompt changed, redraw the previous frame at this denoising strength instead of from noise: faster (that share of the steps) but it follows the new words less (bench/live_warm.py: 0.5 took 0.57x the time and scored 0.76 against 0.97 on the alignment suite). 0: off.")] = 0.0,
    columns: Annotated[int, typer.Option(min=8, max=512, help="In a terminal: the image's width in character cells (two pixels a cell, upright).")] = 64,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:N or mps (default: the best there is).")] = None,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for torch.")] = None,
    precision: Annotated[str, typer.Option(help="fp32 (the default) or bf16 (kaiga generate --help).")] = "fp32",
    backend: Annotated[str, typer.Option(help="eager (the default) or jit: the UNet traced on the first frame, then faster at batch 1 (kaiga generate --help).")] = "eager",
    *, fields: dict,
):
    """A live preview: the image redrawn as the prompt is typed (the terminal's version of /v1/live)."""
    from kaiga.cli_common import (
        _check_backend,
        _check_device,
        _check_precision,
        _setup_logging,
        _use_threads,
        _writable_folder,
        fail,
    )
    from kaiga.live import LiveSession, LiveSettings
    from kaiga.model_files import ModelError
    from kaiga.request import RequestError

    _setup_logging()
    _check_device(device)
    _check_precision(precision)
    _check_backend(backend)
    if out_dir is not None:
        _writable_folder(out_dir, "--out")
    _use_threads(threads)
    from kaiga.studio import Studio

    settings = LiveSettings(similarity=similarity, debounce_ms=debounce_ms, warm_start=warm_start)
    session = LiveSession(Studio(device=device, precision=precision, backend=backend), settings,
                          defaults={k: v for k, v in fields.items() if v not in (None, "")})
    try:
        if prompt:
            session.update({"prompt": prompt})
    except (RequestError, ModelError) as e:
        fail(str(e))
    if sys.stdin.isatty() and sys.stdout.isatty():
        _interactive(session, prompt, out_dir or Path("outputs"), columns)
    else:
        _piped(session, out_dir, bool(prompt))


def _keep(frame, out_dir: Path) -> Path:
    from kaiga.cli_common import _output_stem, _save_new
    from kaiga.metadata import GenerationRecord

    record = GenerationRecord.model_validate(frame.record)
    out_dir.mkdir(parents=True, exist_ok=True)
    return _save_new(frame.image, record, out_dir, _output_stem("live-", [record]))


def _piped(session, out_dir: Path | None, started: bool) -> None:
    """One line in, one line out: a prompt or a JSON object of fields per line."""
    from kaiga.cli_common import err
    from kaiga.live import error_message
    from kaiga.model_files import ModelError
    from kaiga.request import RequestError

    rate = _Rate()
    lines = iter(sys.stdin.readline, "")
    pending = [None] if started else []  # the argument's prompt is the first frame
    for line in [*pending, *lines]:
        try:
            if line is not None:
                text = line.rstrip("\n")
                if not text.strip():
                    continue
                session.update(json.loads(text) if text.lstrip().startswith("{") else {"prompt": text})
            frame = session.render()
        except json.JSONDecodeError as e:
            err.print(f"error: message: not valid JSON ({e.msg})", highlight=False, soft_wrap=True)
            continue
        except (RequestError, ModelError) as e:
            err.print(f"error: {error_message(e)['error']}", highlight=False, soft_wrap=True)
            continue
        if frame.skipped:
            typer.echo(f"frame {frame.number}: skipped ({frame.skipped})")
            continue
        rate.tick()
        kept = f"  {_keep(frame, out_dir)}" if out_dir is not None else ""
        typer.echo(f"frame {frame.number}: {frame.ms:.0f} ms, {rate.fps:.1f} fps  {frame.record['prompt']!r} "
                   f"seed {frame.record['seed']}{kept}")


def _interactive(session, prompt: str, out_dir: Path, columns: int) -> None:
    """The prompt line, the picture above it, the status between; keys read one by one (termios cbreak)."""
    import termios
    import tty

    from kaiga.live import error_message
    from kaiga.model_files import ModelError
    from kaiga.request import RequestError

    fd, rate = sys.stdin.fileno(), _Rate()
    logging.getLogger("kaiga").setLevel(logging.ERROR)  # a warning would scroll the screen: the status line says it
    saved = termios.tcgetattr(fd)
    text, frame, status, changed_at = prompt, None, "type a prompt; Enter keeps the frame, Esc leaves", None
    if prompt:
        changed_at = 0.0
    out = sys.stdout
    out.write("\x1b[?1049h\x1b[?25l")  # the alternate screen, cursor hidden: the shell's screen comes back after
    try:
        tty.setcbreak(fd)
        while True:
            _draw(out, frame, status, text, columns)
            wait = None if changed_at is None else max(0.0, changed_at + session.settings.debounce_ms / 1000
                                                       - time.perf_counter())
            ready, _, _ = select.select([fd], [], [], wait)
            if ready:
                key = os.read(fd, 32).decode(errors="ignore")
                if not key or key in QUIT_KEYS:  # Esc alone (an arrow key is Esc and more)
                    return
                if key in KEEP_KEYS:
                    status = f"kept {_keep(frame, out_dir)}" if frame is not None and frame.image else "no frame yet"
                    continue
                if key in ERASE_KEYS:
                    text = text[:-1]
                elif key == "\x15":  # Ctrl-U
                    text = ""
                elif key.isprintable():
                    text += key
                else:
                    continue  # arrows and other escape sequences
                changed_at = time.perf_counter()
                continue
            if changed_at is None:
                continue
            changed_at = None
            if not text.strip():
                continue
            try:
                session.update({"prompt": text})
                drawn = session.render()
            except (RequestError, ModelError) as e:
                status = error_message(e)["error"]
                continue
            if drawn.skipped:
                status = f"frame {drawn.number}: skipped ({drawn.skipped})"
                continue
            frame = drawn
            rate.tick()
            status = f"frame {frame.number}: {frame.ms:.0f} ms, {rate.fps:.1f} fps, seed {frame.record['seed']}"
            if unknown := frame.record["extra"].get("unknown_words"):
                status += f"; not known, ignored: {', '.join(unknown)}"
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        out.write("\x1b[0m\x1b[?25h\x1b[?1049l")
        out.flush()


def _draw(out, frame, status: str, text: str, columns: int) -> None:
    picture = ansi_image(frame.image, columns) if frame is not None else ""
    out.write("\x1b[H\x1b[2J" + picture + "\n\x1b[2m" + status + "\x1b[0m\n> " + text + "▏")
    out.flush()
