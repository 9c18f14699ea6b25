"""`kaiga generate` with the safety filter, as a person runs it: a flagged image is written blurred with its
note and named in a warning line; a bad setting is one line and exit 2."""

import os
import subprocess
import sys

import pytest

from kaiga.metadata import read_metadata


def kaiga(*args, **env):
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})


@pytest.mark.slow  # a subprocess that loads torch and a model (~10 s)
def test_a_flagged_image_is_written_blurred_with_a_warning(tmp_path):
    r = kaiga("generate", "a red car, NSFW", "--model", "scenes-gan", "--seed", "2", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    [path] = r.stdout.split()
    note = read_metadata(path).record.extra["safety"]
    assert (note["check"], note["terms"], note["action"]) == ("prompt", ["nsfw"], "blurred")
    assert f"warning: {path}: flagged by the safety filter (prompt check: terms nsfw)" in r.stderr


@pytest.mark.slow  # a subprocess that imports torch (~5 s)
def test_a_bad_threshold_is_one_line_exit_2(tmp_path):
    r = kaiga("generate", "a red car", "--out", str(tmp_path), KAIGA_SAFETY_THRESHOLD="1.5")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "error: KAIGA_SAFETY_THRESHOLD: must be a number above 0 and at most 1 (got 1.5)"
    assert not list(tmp_path.glob("*.png"))


def test_serve_refuses_a_bad_setting_before_it_starts():
    r = kaiga("serve", "--port", "7998", KAIGA_SAFETY="maybe")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error: KAIGA_SAFETY:") and len(r.stderr.strip().splitlines()) == 1
