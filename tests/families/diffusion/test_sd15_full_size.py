"""Stable Diffusion 1.5 as users download it (issue 16 item 11): its published configs with random weights.

Quick tests use SD 1.5's block structure at tiny widths; the `slow` ones build the full-size networks
(860 M-parameter UNet, 1.07 G parameters in all) once per session in a process of their own, stored in
float16 (~2 GB each form), and load them in child processes so that each load's peak memory is its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from kaiga.capabilities import Capabilities
from kaiga.families.diffusion.generate import sample
from kaiga.model_files import load_model, model_hash, model_info, resolve_model
from kaiga.request import GenerationRequest
from tests.families.diffusion import sd15_files

SCRIPT = Path(sd15_files.__file__)
SD_DEFAULTS = {"steps": 50, "guidance": 7.5, "upscale": 1}  # diffusers' StableDiffusionPipeline


def _sha(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 24):
                h.update(chunk)
    return h.hexdigest()[:10]


def _run(*args: str, timeout: int = 300) -> dict:
    """The helper script in a child process (one thread, as the suite runs); its last line of JSON."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), *args], check=False, capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=SCRIPT.parents[3])
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- SD 1.5's structure at tiny widths -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    """A diffusers folder as on the Hub (no kaiga.json), SD 1.5's blocks at tiny widths, float32."""
    unet, vae, text = sd15_files.build(*sd15_files.tiny_configs())
    return sd15_files.write_folder(tmp_path_factory.mktemp("tiny-sd") / "sd", unet, vae, text,
                                   sd15_files.clip_tokenizer())


@pytest.fixture(scope="module")
def tiny_model(tiny_sd):
    return load_model(resolve_model(str(tiny_sd)), torch.device("cpu"))


def test_sd_sizes_divide_by_8_and_odd_latents_run_through_the_unet(tiny_model):
    caps = Capabilities.from_info(tiny_model.info)
    assert (caps.size_multiple, caps.native_size, caps.max_size) == (8, 64, 2048)
    # 640×360 (as diffusers and A1111 take it): latent 80×45, which the UNet's 3 downsamplings do not divide.
    request = GenerationRequest(prompt="a red car", width=640, height=360, steps=1, guidance=7.5)
    assert sample(tiny_model, request, [3])[0].size == (640, 360)
    request = GenerationRequest(prompt="a red car", width=72, height=64, steps=1, guidance=7.5)
    assert sample(tiny_model, request, [3])[0].size == (72, 64)


def test_sd_defaults_and_capabilities_are_known_before_loading(tiny_sd, tiny_model):
    assert tiny_model.info["defaults"] == SD_DEFAULTS
    assert model_info(resolve_model(str(tiny_sd))) == json.loads(json.dumps(tiny_model.info))
    bundled = model_info(resolve_model(None))  # kaiga's own model keeps its kaiga.json: 64², multiples of 16
    assert "defaults" not in bundled and bundled["size_multiple"] == 16


def test_long_prompts_are_chunked_or_named_in_a_warning(tiny_model):
    """A1111 encodes a prompt of more than 75 tokens in chunks of 75; silently cutting it at 77 is the bug."""
    cut = " ".join(["car"] * 25)  # 75 tokens (one per letter): what fits between the start and end tokens
    words = cut + " " + " ".join(["dog"] * 30)  # 165 tokens
    tok = tiny_model.tokenizer
    assert tok(cut).input_ids == tok(words, truncation=True, max_length=77).input_ids  # what a cut encoder sees
    request = GenerationRequest(prompt=words, steps=1, guidance=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        long_image = np.asarray(sample(tiny_model, request, [5])[0], dtype=np.int16)
    cut_image = np.asarray(sample(tiny_model, request.model_copy(update={"prompt": cut}), [5])[0], dtype=np.int16)
    chunked = np.abs(long_image - cut_image).max() > 0
    assert chunked or any("token" in str(w.message) for w in caught), "the prompt was cut at 77 tokens without a word"


# --- full size ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sd15(tmp_path_factory) -> Iterator[dict[str, Path]]:
    """Full-size SD 1.5 with random weights, float16 on disk: a diffusers folder, the same weights as fp16
    variant files only, and a single file in the original layout without kaiga metadata (a real download).
    Removed after the session (4 GB; pytest keeps its last three temporary folders)."""
    out = tmp_path_factory.mktemp("sd15")
    _run("write", str(out), timeout=600)
    yield {"folder": out / "sd15", "fp16_folder": out / "sd15-fp16", "single_file": out / "v1-5-pruned.safetensors"}
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="session")
def sd15_loads(sd15, tmp_path_factory) -> dict[str, dict]:
    """The fp16-variant folder and the single file (with the plain folder as --config), each loaded and
    sampled in a child process of its own."""
    out = tmp_path_factory.mktemp("sd15-out")
    runs = {"fp16_folder": (str(sd15["fp16_folder"]),),
            "single_file": (str(sd15["single_file"]), str(sd15["folder"]))}
    return {name: {**_run("load", *args, str(out / f"{name}.npy")), "pixels": np.load(out / f"{name}.npy")}
            for name, args in runs.items()}


@pytest.mark.slow
def test_full_size_loads_as_fp16_variants_and_as_a_single_file_with_the_same_pixels(sd15_loads):
    folder, single = sd15_loads["fp16_folder"], sd15_loads["single_file"]
    assert folder["params"] == single["params"] > 1_000_000_000
    assert folder["pixels"].shape == (64, 64, 3)
    assert np.array_equal(folder["pixels"], single["pixels"])
    for run in (folder, single):
        assert run["info"]["defaults"] == SD_DEFAULTS and run["info"]["size_multiple"] == 8
        assert run["info"]["native_size"] == 512


@pytest.mark.slow
def test_full_size_single_file_load_peaks_within_1_3_times_the_folder_load(sd15_loads):
    folder, single = sd15_loads["fp16_folder"], sd15_loads["single_file"]
    assert folder["peak_mb"] > 4000  # the float32 model itself is 4.3 GB: the figure measures a real load
    for peak in ("peak_mb", "run_peak_mb"):  # after loading, and after a forward pass
        assert single[peak] <= 1.3 * folder[peak], f"{peak}: single file {single[peak]} MB, folder {folder[peak]} MB"


@pytest.mark.slow
def test_full_size_info_before_loading_matches_the_loaded_model(sd15, sd15_loads):
    loaded = sd15_loads["fp16_folder"]["info"]
    assert model_info(resolve_model(str(sd15["fp16_folder"]))) == loaded
    assert model_info(resolve_model(str(sd15["single_file"])), config_dir=sd15["folder"]) == loaded
    assert model_info(resolve_model(str(sd15["single_file"]))) == loaded  # no configs: SD 1.x's, from the header


@pytest.mark.slow
def test_full_size_hash_covers_only_the_loaded_files(sd15):
    """A full clone: fp16 copies beside the fp32 files, the single files at the top, a safety checker."""
    folder = sd15["folder"]
    loaded = sorted(folder.glob("*/*.safetensors"))
    assert [p.relative_to(folder).as_posix() for p in loaded] == [
        "text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors"]
    clone = folder.parent / "clone"  # beside the files it links, so the fixture's clean-up frees them
    for src in folder.rglob("*"):
        if src.is_file():
            (clone / src.relative_to(folder)).parent.mkdir(parents=True, exist_ok=True)
            os.link(src, clone / src.relative_to(folder))
    for f in loaded:  # hard links: the decoys cost no disk
        os.link(f, clone / f.relative_to(folder).with_name(f"{f.stem}.fp16.safetensors"))
    os.link(sd15["single_file"], clone / "v1-5-pruned.safetensors")
    (clone / "safety_checker").mkdir()
    (clone / "safety_checker" / "model.safetensors").write_bytes(b"decoy")
    assert model_hash(resolve_model(str(clone))) == _sha(loaded)
    assert model_hash(resolve_model(str(sd15["fp16_folder"]))) == _sha(loaded)  # the same bytes, renamed


def test_the_server_catalog_reads_an_sd_folder_as_the_model_will(tiny_sd):
    """The server refuses before queuing what the model would refuse: an SD folder's sizes divide by 8 (not 64)
    and its defaults are SD's, read from its files without loading it."""
    from kaiga.server.catalog import Catalog

    catalog = Catalog(str(tiny_sd))
    caps = catalog.capabilities(None)
    assert (caps.size_multiple, caps.default["guidance"], caps.default["steps"]) == (8, 7.5, 50)
    catalog.check(GenerationRequest(prompt="a red car", width=640, height=360))  # no RequestError
