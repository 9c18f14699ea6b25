"""`kaiga worker`: a process that runs queued jobs (and campaign cells) from a shared database, beside others.

Several workers, on one machine or several, share one queue (PostgreSQL across machines; SQLite on one) and one
image store (`--data-dir`, a shared folder across machines): each claims a job with a conditional UPDATE, so no job
runs twice, and beats while it runs; a job whose worker stops beating for `--lease` seconds (killed, its machine
lost) goes back to the queue for another (kaiga/store/jobs.py). `kaiga serve --db URL` in front queues the jobs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

LEASE_S = 60.0


def worker_cmd(db: Annotated[Optional[str], typer.Option("--db", help="SQLAlchemy URL of the shared database (default: SQLite in $KAIGA_HOME).")] = None,
               data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="The gallery's folder's parent, shared by every worker and the server (default: $KAIGA_HOME).")] = None,
               model: Annotated[Optional[list[str]], typer.Option("--model", help="Run only jobs queued for this model (repeatable; default: every job).")] = None,
               lease: Annotated[float, typer.Option(min=1.0, help="Seconds without a heartbeat after which a running job is taken from its worker.")] = LEASE_S,
               device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:N or mps (default: the best there is).")] = None,
               threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for torch.")] = None,
               precision: Annotated[str, typer.Option(help="fp32 (the default) or bf16: generate under bfloat16 autocast (records say so).")] = "fp32",
               backend: Annotated[str, typer.Option(help="eager (the default) or jit: the UNet traced per batch and size on first use (kaiga generate --help).")] = "eager",
               poll: Annotated[float, typer.Option(min=0.05, help="Seconds between looks at an empty queue.")] = 0.5,
               once: Annotated[bool, typer.Option("--exit-when-idle", help="Stop when the queue has no job for this worker.")] = False):
    """Run queued jobs from the database until stopped (Ctrl-C), beside other workers on the same queue."""
    from kaiga.cli_common import (
        _check_backend,
        _check_device,
        _check_precision,
        _open_db,
        _setup_logging,
        _use_threads,
        _writable_folder,
        err,
    )
    from kaiga.model_files import resolve_model
    from kaiga.provenance.credentials import sign_by_default
    from kaiga.server.settings import ServerSettings
    from kaiga.store.gallery import Gallery
    from kaiga.store.jobs import JobQueue
    from kaiga.store.uploads import UploadStore
    from kaiga.worker import Worker

    _setup_logging()
    if data_dir is not None:
        _writable_folder(data_dir, "--data-dir")
    _check_device(device)
    _check_precision(precision)
    _check_backend(backend)
    _use_threads(threads)
    database = _open_db(db)
    settings = ServerSettings(db_url=db, data_dir=data_dir)
    queue = JobQueue(database, lease_s=lease)
    gallery = Gallery(database, settings.gallery_dir(), finish=sign_by_default)
    worker = Worker(queue, gallery, lambda name: resolve_model(name).path, device=device, precision=precision,
                    backend=backend, uploads=UploadStore(settings.uploads_dir()),
                    models=tuple(model) if model else None)
    made = 0
    err.print(f"worker: running jobs from {database.engine.url.render_as_string(hide_password=True)}"
              f"{' for ' + ', '.join(model) if model else ''} (Ctrl-C stops)", highlight=False, soft_wrap=True)
    try:
        while True:
            job = worker.run_one()
            if job is not None:
                made += job.status == "done"
                continue
            if once:
                break
            time.sleep(poll)
    except KeyboardInterrupt:
        pass
    err.print(f"worker: {made} job(s) done", highlight=False)
