"""What every `kaiga` command shares: the consoles, one-line failures (exit 2), path checks made before any
work, the device and thread choices, the database of `--db`, output file names that never overwrite, and the
body of the remix commands (vary, pan, zoom, campaign more). kaiga/cli.py and kaiga/cli_campaign.py import
these (the commands themselves live there).

Example:
    >>> default_threads({}, cores=2, busy=1)
    1
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

err = Console(stderr=True)
out = Console()

EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE):
    """One clear line (or a few, one per problem) on stderr, no traceback, then exit.

    Never wrapped at the terminal's width (a line is one problem, for people and for scripts), and
    printed as text: a path with brackets in it is not Rich markup.
    """
    from rich.markup import escape

    for line in message.splitlines():
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# --- paths given on the command line: checked before any work, one line each when wrong ----------

def _input_path(path: Optional[Path], name: str, kind: str = "file", required: bool = True) -> None:
    """Fail unless `path` is an existing, readable `kind` ("file", "folder" or "any").

    None (not given) passes; so does a missing path that is not `required` (the command does without).
    """
    if path is None:
        return
    if not path.exists():
        if required:
            fail(f"{name}: {path} does not exist")
        return
    if kind == "file" and path.is_dir():
        fail(f"{name}: {path} is a folder, not a file")
    if kind == "folder" and not path.is_dir():
        fail(f"{name}: {path} is a file, not a folder")
    if not os.access(path, os.R_OK):
        fail(f"{name}: cannot read {path} (permission denied)")


def _writable_folder(path: Path, name: str, given: Optional[Path] = None) -> None:
    """Fail unless `path` is a folder, or one that can be made, where files can be written.

    Nothing is left behind: the nearest existing folder is tried with a nameless temporary file.
    `given`: the path to name in the message (an output file, whose folder this is).
    """
    given = given or path
    if path.exists() and not path.is_dir():
        fail(f"{name}: {given} is a file, not a folder" if given == path else
             f"{name}: cannot write {given}: {path} is a file")
    existing = path
    while not existing.is_dir():
        if existing.exists():  # a file on the way down
            fail(f"{name}: cannot write {given}: {existing} is a file")
        existing = existing.parent
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        fail(f"{name}: cannot write {given} ({e.strerror or e} in {existing})")


def _writable_file(path: Optional[Path], name: str) -> None:
    """Fail unless `path` (None: not given) names a file that can be written (its folder need not exist yet)."""
    if path is None:
        return
    if path.is_dir():
        fail(f"{name}: {path} is a folder; give a file name")
    _writable_folder(path.parent, name, given=path)


# --- the machine: --device and --threads, checked and set before any work --------------------------

_Device = Annotated[Optional[str], typer.Option(help="cuda, mps or cpu; default: the best available.")]
MAX_DEFAULT_THREADS = 4  # beyond this the bundled models' small tensors gain little from more threads
_Threads = Annotated[Optional[int], typer.Option(
    min=1, show_default=False,
    help=f"CPU threads for torch. Default: $OMP_NUM_THREADS when set, else the cores not busy with other "
         f"work when the command starts, at most {MAX_DEFAULT_THREADS}. More threads than free cores can "
         "make generation many times slower (measured: a 64-pixel image in 37-66 s instead of 0.9 s beside one busy "
         "process on 2 cores).")]


def _check_precision(precision: str) -> None:
    """Fail unless `precision` is fp32 or bf16 (kaiga/pipelines/precision.py)."""
    from kaiga.pipelines.precision import check_precision

    try:
        check_precision(precision)
    except ValueError as e:
        fail(f"--{e}")


_Backend = Annotated[str, typer.Option(help="How the diffusion UNet runs: eager (the default: diffusers' modules, the golden pixels) or jit: traced and frozen as a TorchScript graph on first use per batch and size (a few seconds), then faster, most at small batches; pixels equal within rounding; LoRA and bf16 run eagerly.")]


def _check_backend(backend: str) -> None:
    """Fail unless `backend` is eager or jit (kaiga/families/diffusion/traced.py)."""
    from kaiga.families.diffusion.traced import check_backend

    try:
        check_backend(backend)
    except ValueError as e:
        fail(f"--{e}")


def _check_device(device: Optional[str]) -> None:
    """Fail unless `device` (None: the best available) is one this machine and this torch build have."""
    if device is None:
        return
    import torch

    mps = getattr(torch.backends, "mps", None)
    available = ["cpu", *(["cuda"] if torch.cuda.is_available() else []),
                 *(["mps"] if mps is not None and mps.is_available() else [])]
    try:
        kind = torch.device(device)
    except (RuntimeError, ValueError):
        fail(f"--device: {device!r} is not a device; this machine has {', '.join(available)}")
    if kind.type == "cuda" and "cuda" in available and (kind.index or 0) >= torch.cuda.device_count():
        fail(f"--device: {device}: this machine has {torch.cuda.device_count()} CUDA device(s), cuda:0 and up")
    if kind.type not in available:
        why = {"cuda": "no CUDA GPU found" if torch.backends.cuda.is_built() else
                       f"this torch build ({torch.__version__}) has no CUDA",
               "mps": "no Apple GPU (MPS) found"}.get(kind.type, "kaiga runs on cpu, cuda or mps")
        fail(f"--device: {device} is not available here: {why}; use {' or '.join(available)}")


def _cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _busy_cores() -> int:
    """Cores other work keeps busy: the larger of the runnable tasks at this moment (less this process) and
    the 1-minute load average, rounded. 0 where the system says neither."""
    busy = 0
    try:
        busy = round(os.getloadavg()[0])
    except (AttributeError, OSError):
        pass
    try:  # "0.72 1.20 1.08 2/91 17073": 2 runnable now, this process one of them
        busy = max(busy, int(Path("/proc/loadavg").read_text().split()[3].split("/")[0]) - 1)
    except (OSError, IndexError, ValueError):
        pass
    return busy


def default_threads(environ: dict, cores: int, busy: int) -> int:
    """Torch threads when --threads is not given: $OMP_NUM_THREADS when set (a whole number), else the
    `cores` that other work leaves free (`busy` of them taken), at least 1 and at most MAX_DEFAULT_THREADS.

    Why not torch's own default (every core): its threads wait for each other at every operation, so a
    single thread that shares its core with another busy process holds all of them up.

    >>> default_threads({}, cores=2, busy=0), default_threads({}, cores=2, busy=1), default_threads({}, 16, 0)
    (2, 1, 4)
    >>> default_threads({"OMP_NUM_THREADS": "3"}, cores=2, busy=1)
    3
    """
    given = environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) >= 1:
        return int(given)
    return max(1, min(MAX_DEFAULT_THREADS, cores - busy))


def _use_threads(threads: Optional[int]) -> int:
    """Set torch's CPU threads before any work: `threads`, else `default_threads`. Warns when they are more
    than the free cores. Returns the count."""
    import torch

    cores, busy = _cores(), _busy_cores()
    n = threads or default_threads(os.environ, cores, busy)
    torch.set_num_threads(n)
    free = max(1, cores - busy)
    if n > free:
        err.print(f"[yellow]warning:[/] torch on {n} threads but only {free} of {cores} cores are free: "
                  f"this can run many times slower; try --threads {free}", highlight=False, soft_wrap=True)
    return n


def _setup_logging():
    logging.basicConfig(level=logging.WARNING, format="%(message)s",
                        handlers=[_RichWarning()], force=True)


class _RichWarning(logging.Handler):
    def emit(self, record):
        err.print(f"[yellow]warning:[/] {record.getMessage()}", highlight=False)


_Db = Annotated[Optional[str], typer.Option("--db", help="SQLAlchemy URL of the database (default: SQLite in $KAIGA_HOME).")]


def _open_db(db: Optional[str]):
    """The database of --db (default: SQLite in $KAIGA_HOME), made or migrated; one line naming --db when it
    cannot be opened (an unknown kind of URL, a server that does not answer)."""
    from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError

    from kaiga.server.settings import ServerSettings
    from kaiga.store.db import normalise_url, open_database

    url = ServerSettings(db_url=db).database_url()
    examples = "sqlite:///PATH/kaiga.db or postgresql://USER@HOST/DATABASE"
    try:
        parsed = normalise_url(url)
    except SQLAlchemyError:
        fail(f"--db: {url!r} is not a database URL; give one such as {examples}")
    shown = parsed.render_as_string(hide_password=True)
    try:
        return open_database(url)
    except NoSuchModuleError:
        fail(f"--db: {shown}: no database driver for {parsed.drivername!r} here; give a URL such as {examples}")
    except (SQLAlchemyError, OSError) as e:
        why = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        fail(f"--db: cannot open {shown} ({why})")


# --- output file names: readable, and never the same for two different images --------------------

def _slug(text: str, n: int = 40) -> str:
    """A file-name word for `text`: ASCII letters and digits joined by '-', at most `n` characters.

    Accents are dropped (café -> cafe), kana spelt out (きつね -> kitune), emoji and other symbols named
    (🚗 -> automobile); a word with letters that cannot be spelt in ASCII (雪, Ж) is left out. "" when
    nothing is left: the file name then has the seed and the record's hash only.

    >>> _slug("A red car, in the snow!"), _slug("Crème brûlée"), _slug("きつね 🚗❄️"), _slug("赤い車")
    ('a-red-car-in-the-snow', 'creme-brulee', 'kitune-automobile-snowflake', '')
    """
    words, word = [], []

    def end_word():
        spelt = [_ascii_letter(ch) for ch in word]
        if word and None not in spelt:
            words.append("".join(spelt))
        word.clear()

    for ch in text:
        category = unicodedata.category(ch)
        if category[0] in "LNM":  # letters, digits and the accents on them
            word.append(ch)
            continue
        end_word()
        if category == "So" and not ch.isascii():  # emoji, ❄, ★: by name
            words.append(unicodedata.name(ch, "").lower())
    end_word()
    return re.sub(r"[^a-z0-9]+", "-", " ".join(words)).strip("-")[:n].strip("-")


def _ascii_letter(ch: str) -> str | None:
    """`ch` in lowercase ASCII ("" for an accent on its own), or None when it has no spelling there."""
    if ch.isascii() or unicodedata.category(ch).startswith("M"):
        return ch.lower() if ch.isascii() else ""
    plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    if plain.isalnum():  # é -> e, ｆ -> f, ３ -> 3
        return plain.lower()
    name = unicodedata.name(ch, "")
    if name.startswith(("HIRAGANA LETTER ", "KATAKANA LETTER ")):  # "HIRAGANA LETTER KI" -> ki
        return name.rsplit(" ", 1)[1].lower()
    return None


def _pixels_key(*records) -> str:
    """8 hex digits of a SHA-256 over what makes the images' pixels: their records, less when they were
    made, how fast and by which kaiga (another sampler, step count, model, size or edit: another key)."""
    fields = [r.pixels_fields() for r in records]
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]


def _output_stem(prefix: str, records: list) -> str:
    """`<prefix><seed>-<prompt slug>-<key>`: the slug for people, the key so that no two images share a name."""
    first = records[0]
    return "-".join(part for part in (f"{prefix}{first.seed:010d}", _slug(first.prompt), _pixels_key(*records)) if part)


def _save_new(image, record, folder: Path, stem: str) -> Path:
    """Save at folder/stem.png, or at stem-1.png, stem-2.png, ... when taken: never over an existing file
    (the same request run twice keeps both)."""
    from kaiga.metadata import png_bytes
    from kaiga.provenance.credentials import SigningError, sign_by_default

    try:  # signed (C2PA; the identity made on first use, KAIGA_SIGNING=off: not); the last step on the final bytes
        data = sign_by_default(png_bytes(image, record), record)
    except SigningError as e:
        fail(str(e))
    return _write_new(data, folder, stem)


def _write_new(data: bytes, folder: Path, stem: str) -> Path:
    """`data` at folder/stem.png, or at stem-1.png, ... when taken (never over an existing file)."""
    from kaiga.metadata import write_atomic

    for k in itertools.count():
        path = folder / (f"{stem}.png" if k == 0 else f"{stem}-{k}.png")
        try:
            return write_atomic(path, data, exclusive=True)
        except FileExistsError:
            continue
        except OSError as e:
            fail(f"--out: cannot write {path} ({e.strerror or e})")


def _remix(image: Path, plan_of, out_dir: Path, n: int, seed, prompt, chaos, model, steps, threads, device,
           faces_consent: bool, mask: Optional[Path] = None, upscale: Optional[int] = None) -> None:
    """The body of vary, pan and zoom: read the image (and mask) and its record, make the plan, run, save."""
    _setup_logging()
    from kaiga.model_files import ModelError
    from kaiga.request import RequestError
    from kaiga.store.uploads import UploadError, read_image_file
    from kaiga.variations import image_record

    _writable_folder(out_dir, "--out")
    _check_device(device)
    try:
        source = read_image_file(image, "image")
        region = read_image_file(mask, "region") if mask is not None else None
    except UploadError as e:
        fail(str(e))
    fields = _given(n=n, seed=seed, prompt=prompt, chaos=chaos, model=model, steps=steps, upscale=upscale)
    from kaiga.studio import Studio

    _use_threads(threads)
    try:
        plan = plan_of(source, image_record(image), region) if mask is not None else plan_of(source, image_record(image))
        studio = Studio(device=device)
        fields.setdefault("upscale", _view_upscale(studio, fields.get("model")))
        with err.status(f"[bold]{plan.kind}[/] of {image.name}"):
            images = studio.remix(plan, faces_consent=faces_consent, **fields)
    except ValueError as e:  # RequestError, a request field out of range (pydantic's ValidationError)
        from pydantic import ValidationError

        from kaiga.request import describe_error

        fail(describe_error(e) if isinstance(e, ValidationError) else str(e))
    except (RequestError, ModelError) as e:
        fail(str(e))
    out_dir.mkdir(parents=True, exist_ok=True)
    for img in images:
        typer.echo(str(_save_new(img.image, img.record, out_dir, _output_stem(f"{plan.kind}-", [img.record]))))


def _given(**fields) -> dict:
    """The request fields a remix command was given (None: left to the image's record or the model)."""
    return {k: v for k, v in fields.items() if v is not None}


def _view_upscale(studio, model: Optional[str]) -> int:
    """The enlargement `generate` shows a model's images at (4 for the 64-pixel bundled models)."""
    from kaiga.request import GenerationRequest

    return studio.capabilities(model).view_upscale(GenerationRequest(prompt=""))
