"""`kaiga campaign run --ray`: the same cells as a local run, made by Ray actors on a real local cluster, with the
same pixels; a campaign moving from this machine to the cluster mid-way; a worker killed mid-campaign loses no
cell and makes none twice."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from kaiga.campaigns.plan import load_plan, with_keys
from kaiga.model_files import model_hash, resolve_model
from kaiga.store.db import open_database
from kaiga.store.tables import Image, Job

pytestmark = pytest.mark.slow  # a Ray cluster starts (~5 s) and each worker loads torch and the model

ray = pytest.importorskip("ray")  # in the test extra: CI has it


def kaiga(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KAIGA_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=400, env=env)


def _plan(tmp_path: Path, model: Path, seeds: int, colours: str = "red, blue") -> Path:
    path = tmp_path / f"ad-{seeds}-{len(colours)}.yaml"
    path.write_text(f'name: ad\nprompt: "a {{colour}} car in the {{scene}}"\n'
                    f"axes: {{colour: [{colours}], scene: [city, forest]}}\nseeds: {seeds}\nmodel: {model}\nsteps: 2\n")
    return path


def _pixels_by_cell(home: Path) -> dict[str, str]:
    """cell key -> SHA-256 of the image's pixels (the PNGs differ in their records' times and signatures)."""
    db = open_database(f"sqlite:///{home / 'kaiga.db'}")
    with db.session() as s:
        rows = [(i.record["extra"]["campaign"]["key"], i.path) for i in s.query(Image)]
    db.engine.dispose()
    return {key: hashlib.sha256(np.asarray(PILImage.open(home / "gallery" / path)).tobytes()).hexdigest()
            for key, path in rows}


def test_ray_makes_the_local_runs_pixels_and_takes_over_a_campaign_mid_way(tmp_path, tiny_model_dir):
    local, moved = tmp_path / "local", tmp_path / "moved"
    full = _plan(tmp_path, tiny_model_dir, seeds=2)  # 8 cells
    r = kaiga("campaign", "run", str(full), "--threads", "1", home=local, cwd=tmp_path)
    assert r.returncode == 0 and "8 of 8 cells made (8 now)" in r.stdout, r.stderr
    # the red cells here, then the rest on the cluster (the colour axis comes first: the red cells keep their
    # indices in the grown plan, and so their records and watermarks)
    half = _plan(tmp_path, tiny_model_dir, seeds=2, colours="red")
    assert "4 of 4 cells made (4 now)" in kaiga("campaign", "run", str(half), home=moved, cwd=tmp_path).stdout
    r = kaiga("campaign", "run", str(full), "--ray", "local", "--workers", "2", home=moved, cwd=tmp_path)
    assert r.returncode == 0 and "8 of 8 cells made (4 now), 0 failed" in r.stdout, r.stdout + r.stderr
    assert "2 Ray worker(s)" in r.stderr
    assert _pixels_by_cell(moved) == _pixels_by_cell(local)  # every cell, the same pixels, none twice
    assert "8 of 8 cells made (0 now)" in kaiga("campaign", "run", str(full), home=moved, cwd=tmp_path).stdout


def test_a_ray_worker_killed_mid_campaign_loses_and_duplicates_no_cell(tmp_path, tiny_model_dir):
    import psutil

    from kaiga.campaigns.on_ray import RayWorkerSpec, connect, run_on_ray
    from kaiga.store.jobs import JobQueue

    plan = load_plan(_plan(tmp_path, tiny_model_dir, seeds=4))  # 16 cells
    cells = with_keys(plan.cells(), lambda model: model_hash(resolve_model(model)))
    url = f"sqlite:///{tmp_path / 'kaiga.db'}"
    queue = JobQueue(open_database(url))
    spec = RayWorkerSpec(db_url=url, gallery_dir=str(tmp_path / "gallery"), uploads_dir=str(tmp_path / "uploads"),
                         campaign="ad", lease_s=3.0, env={"KAIGA_HOME": str(tmp_path)})
    killed: list[int] = []

    def kill_a_busy_worker(job) -> None:
        if killed:
            return
        busy = [p for p in psutil.Process().children(recursive=True)
                if "CellWorker.run_one" in " ".join(p.cmdline())]  # Ray titles an actor's process by its call
        if busy:
            killed.append(busy[0].pid)
            os.kill(busy[0].pid, signal.SIGKILL)

    connect("local", num_cpus=2)
    try:
        result = run_on_ray(queue, plan, cells, spec, workers=2, on_cell=kill_a_busy_worker)
    finally:
        ray.shutdown()
    assert killed, "no worker was found busy to kill"
    assert (result.done, result.counts.get("failed", 0)) == (16, 0)
    with queue.db.session() as s:
        assert s.query(Image).count() == 16  # none lost, none made twice
        assert s.query(Job).filter(Job.status == "done").count() == 16
