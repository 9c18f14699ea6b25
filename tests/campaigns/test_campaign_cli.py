"""`kaiga campaign plan | run | status` as a person runs them: cells made into the gallery, a rerun that makes
nothing, a `kill -9` mid-campaign that loses and duplicates no cell, and a failing cell that stops nothing else."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kaiga.metadata import read_metadata
from kaiga.paths import model_home
from kaiga.store.db import open_database
from kaiga.store.tables import Image, Job


def kaiga(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _plan(tmp_path: Path, model: Path, seeds: int = 2, **extra) -> Path:
    path = tmp_path / "ad.yaml"
    lines = ['prompt: "a {colour} car in the {scene}"', "axes: {colour: [red, blue], scene: [city, forest]}",
             f"seeds: {seeds}", f"model: {model}", "steps: 2", *[f"{k}: {v}" for k, v in extra.items()]]
    path.write_text("\n".join(lines) + "\n")
    return path


def _counts() -> tuple[int, int]:
    """(campaign jobs done, gallery images) in $KAIGA_HOME's database."""
    db = open_database(f"sqlite:///{model_home() / 'kaiga.db'}")
    with db.session() as s:
        done = s.query(Job).filter(Job.campaign == "ad", Job.status == "done").count()
        images = s.query(Image).count()
    db.engine.dispose()
    return done, images


def test_plan_run_rerun_and_status(tmp_path, tiny_model_dir):
    plan = _plan(tmp_path, tiny_model_dir)
    shown = kaiga("campaign", "plan", str(plan), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "ad: 8 cells (2 colour × 2 scene × 2 seeds); 0 made, 8 to make" in shown.stdout
    assert "estimated time:" in shown.stdout
    run = kaiga("campaign", "run", str(plan), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "ad: 8 of 8 cells made (8 now), 0 failed" in run.stdout
    assert sorted(p.name for p in (tmp_path / "campaigns" / "ad").iterdir()) == [
        "colour-x-scene.png", "colour-x-seed.png", "scene-x-seed.png"]
    assert _counts() == (8, 8)
    again = kaiga("campaign", "run", str(plan), cwd=tmp_path)
    assert "8 of 8 cells made (0 now)" in again.stdout and _counts() == (8, 8)
    status = json.loads(kaiga("campaign", "status", "ad", "--json", cwd=tmp_path).stdout)
    assert (status["cells"], status["done"], status["failed"], status["pending"]) == (8, 8, 0, 0)
    grown = _plan(tmp_path, tiny_model_dir, seeds=3)  # a plan that grows makes only its new cells
    assert "12 of 12 cells made (4 now)" in kaiga("campaign", "run", str(grown), cwd=tmp_path).stdout
    missing = kaiga("campaign", "status", "spring", cwd=tmp_path)
    assert missing.returncode == 2 and "no campaign 'spring'" in missing.stderr and "campaigns: ad" in missing.stderr


def test_a_cell_the_model_cannot_make_is_refused_before_anything_runs(tmp_path, tiny_model_dir):
    plan = _plan(tmp_path, tiny_model_dir, width=1000)
    r = kaiga("campaign", "run", str(plan), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: the cell colour=red, scene=city, seed=0: width")
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (model_home() / "kaiga.db").exists() or _counts() == (0, 0)


@pytest.mark.slow  # a campaign killed and resumed (~40 s on two busy cores)
def test_kill_9_mid_campaign_loses_and_duplicates_no_cell(tmp_path, tiny_model_dir):
    plan = _plan(tmp_path, tiny_model_dir, seeds=6)  # 24 cells
    proc = subprocess.Popen([sys.executable, "-m", "kaiga.cli", "campaign", "run", str(plan)], cwd=tmp_path,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and (not (model_home() / "kaiga.db").exists() or _counts()[0] < 3):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before, _ = _counts()
    assert 3 <= done_before < 24
    r = kaiga("campaign", "run", str(plan), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert _counts() == (24, 24)  # every cell once: none lost, none made twice


def test_a_failing_cell_is_retried_once_then_reported_and_the_rest_go_on(tmp_path, tiny_model_dir):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    weights = next((broken / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:200])  # its weights cut short: it fails when it loads
    path = tmp_path / "ad.yaml"
    path.write_text(f'prompt: "a red car"\naxes: {{model: ["{tiny_model_dir}", "{broken}"]}}\nseeds: 2\nsteps: 2\n')
    r = kaiga("campaign", "run", str(path), cwd=tmp_path)
    assert r.returncode == 1 and "ad: 2 of 4 cells made (2 now), 2 failed" in r.stdout, r.stdout + r.stderr
    status = json.loads(kaiga("campaign", "status", "ad", "--json", cwd=tmp_path).stdout)
    assert status["failed"] == 2 and all(str(broken) in f["cell"]["model"] for f in status["failures"])
    db = open_database(f"sqlite:///{model_home() / 'kaiga.db'}")
    with db.session() as s:
        assert sorted(j.attempts for j in s.query(Job).filter(Job.status == "failed")) == [2, 2]
    db.engine.dispose()


def test_review_by_two_people_then_export_the_approved(tmp_path, tiny_model_dir):
    """Scripted reviews by two reviewers and the interactive walk through, then the export: the approved images
    (someone approved, nobody rejected) with a manifest; --all writes every made image."""
    plan = _plan(tmp_path, tiny_model_dir, seeds=1)  # 4 cells
    assert kaiga("campaign", "run", str(plan), cwd=tmp_path).returncode == 0
    db = open_database(f"sqlite:///{model_home() / 'kaiga.db'}")
    with db.session() as s:
        ids = sorted(i.id for i in s.query(Image))
    db.engine.dispose()
    a, b, c, d = ids
    r = kaiga("review", "ad", "--approve", f"{a},{b}", "--star", str(a), "--note", f"{b}=too dark", "--reviewer", "ann",
              cwd=tmp_path)
    assert r.returncode == 0 and "4 review(s) by ann recorded" in r.stdout, r.stderr
    assert kaiga("review", "ad", "--reject", str(b), "--reviewer", "bob", cwd=tmp_path).returncode == 0
    walk = subprocess.run([sys.executable, "-m", "kaiga.cli", "review", "ad", "--reviewer", "cat"], input="a\nx\nk\nq\n",
                          capture_output=True, text=True, cwd=tmp_path, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert walk.returncode == 0 and "4 of 4 images to review as cat" in walk.stdout and f"image {a}:" in walk.stdout
    bad = kaiga("review", "ad", "--approve", "99999", cwd=tmp_path)
    assert bad.returncode == 2 and "99999 is not an image of campaign 'ad'" in bad.stderr
    r = kaiga("campaign", "export", "ad", "--out", str(tmp_path / "approved"), cwd=tmp_path)
    assert r.returncode == 0 and "wrote 1 of 4 made images" in r.stdout, r.stdout + r.stderr
    manifest = json.loads((tmp_path / "approved" / "manifest.json").read_text())
    assert [(m["image_id"], m["approved_by"], m["starred_by"]) for m in manifest] == [(a, ["ann", "cat"], ["ann"])]
    assert (tmp_path / "approved" / manifest[0]["file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert manifest[0]["file"].startswith("0000-red-city-0-")
    more = kaiga("campaign", "more", "ad", "--n", "2", "--strength", "strong", "--out", str(tmp_path / "more"),
                 cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    varied = sorted((tmp_path / "more").glob("*.png"))
    assert len(varied) == 2 and all(read_metadata(p).record.extra["remix"] == "vary-strong" for p in varied)
    every = kaiga("campaign", "export", "ad", "--out", str(tmp_path / "all"), "--all", cwd=tmp_path)
    assert "wrote 4 of 4" in every.stdout
    rows = (tmp_path / "all" / "manifest.csv").read_text().splitlines()
    assert rows[0].startswith("file,image_id,cell,colour,scene,seed,sha256,approved") and len(rows) == 5
    assert any('"{""ann"": ""too dark""}"' in row and ",bob," in row for row in rows)



@pytest.mark.parametrize("address, says", [("127.0.0.1:1", "no Ray cluster answers there"),
                                           ("nonsense", "give 'auto', 'local' or a cluster's HOST:PORT")])
def test_a_ray_address_where_no_cluster_answers_is_one_line_and_exit_2(tmp_path, tiny_model_dir, address, says):
    pytest.importorskip("ray")
    r = kaiga("campaign", "run", str(_plan(tmp_path, tiny_model_dir)), "--ray", address, cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and f"--ray {address}: {says}" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert _counts() == (0, 0)  # nothing made
