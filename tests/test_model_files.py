import pickle

import pytest
import torch
from safetensors.torch import save_file

from kaiga.model_files import (
    ModelError,
    ModelFormat,
    identify,
    list_models,
    load_model,
    model_hash,
    model_info,
    resolve_model,
    user_models_dir,
)


def test_the_default_model_is_bundled():
    ref = resolve_model(None)
    assert ref.source == "bundled" and ref.format is ModelFormat.DIFFUSERS_FOLDER
    assert len(model_hash(ref)) == 10


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin", ".safetensors"])
def test_pickle_checkpoints_are_refused_whatever_their_name(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)  # a zip of pickles
    with pytest.raises(ModelError, match="pickle checkpoint.*arbitrary code.*safetensors"):
        identify(path)
    raw = tmp_path / f"raw{suffix}"
    raw.write_bytes(pickle.dumps({"w": [0.0]}, protocol=4))
    with pytest.raises(ModelError, match="pickle"):
        identify(raw)


def test_safetensors_is_recognised_by_content_not_name(tmp_path):
    path = tmp_path / "weights.ckpt"
    save_file({"w": torch.zeros(2)}, str(path))
    assert identify(path) is ModelFormat.SINGLE_FILE


def test_user_models_are_listed_and_resolved_by_name(tiny_model_dir):
    import shutil

    user_models_dir().mkdir(parents=True)
    shutil.copytree(tiny_model_dir, user_models_dir() / "mine")
    names = {(r.name, r.source) for r in list_models()}
    assert ("mine", "user") in names and ("scenes-diffusion", "bundled") in names
    assert resolve_model("mine").path == user_models_dir() / "mine"
    assert resolve_model(str(tiny_model_dir)).source == "path"


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ModelError, match="not found: known models are scenes-diffusion"):
        resolve_model("no-such-model")


def test_a_broken_folder_is_a_model_error(tmp_path, tiny_model_dir):
    import shutil


    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    shutil.rmtree(broken / "unet")
    (broken / "unet").mkdir()
    with pytest.raises(ModelError, match="not a loadable diffusers model folder"):
        load_model(resolve_model(str(broken)), torch.device("cpu"))


# --- which files a diffusers folder loads, and what its hash covers (issue 16 item 11) -------------------
BUNDLED_HASHES = {"scenes-diffusion": "11b0f8e567", "scenes-fast": "794dff65bd", "scenes-gan": "f58cb97304",
                  "scenes-transformer": "78a097e273",
                  "scenes-vae": "e1c08d6317"}  # as recorded in the images they made: they must never change


def test_bundled_hashes_are_unchanged():
    assert {r.name: model_hash(r) for r in list_models()} == BUNDLED_HASHES


def _renamed(folder, out, rename):
    """A copy of `folder` (hard links) whose weight files are named by `rename(path)`: a name, or None to drop."""
    import os

    for src in folder.rglob("*"):
        if src.is_file():
            name = rename(src) if src.suffix == ".safetensors" else src.name
            if name:
                dst = out / src.relative_to(folder).with_name(name)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.link(src, dst)
    return out


def _sha(files):
    import hashlib

    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()[:10]


def test_a_folder_of_fp16_variants_only_loads_and_hashes_them(tiny_model_dir, tmp_path):
    variants = _renamed(tiny_model_dir, tmp_path / "fp16", lambda p: f"{p.stem}.fp16.safetensors")
    model = load_model(resolve_model(str(variants)), torch.device("cpu"))
    plain = load_model(resolve_model(str(tiny_model_dir)), torch.device("cpu"))
    ids = plain.tokenize(["a red car"])
    assert torch.equal(model.encode_text(ids), plain.encode_text(ids))
    assert model_hash(resolve_model(str(variants))) == _sha(sorted(variants.glob("*/*.fp16.safetensors")))


def test_plain_weights_are_preferred_and_other_copies_are_not_hashed(tiny_model_dir, tmp_path):
    """A full clone: fp16 and non-EMA copies beside the plain files, a single file at the top, a safety checker."""
    from safetensors.torch import save_file

    clone = _renamed(tiny_model_dir, tmp_path / "clone", lambda p: p.name)
    for f in sorted(clone.glob("*/*.safetensors")):
        for variant in ("fp16", "non_ema"):
            save_file({"decoy": torch.ones(3)}, str(f.with_name(f"{f.stem}.{variant}.safetensors")))
    save_file({"decoy": torch.ones(3)}, str(clone / "v1-5-pruned.safetensors"))
    (clone / "safety_checker").mkdir()
    save_file({"decoy": torch.ones(3)}, str(clone / "safety_checker" / "model.safetensors"))
    loaded = [clone / "text_encoder" / "model.safetensors", clone / "unet" / "diffusion_pytorch_model.safetensors",
              clone / "vae" / "diffusion_pytorch_model.safetensors"]
    assert model_hash(resolve_model(str(clone))) == model_hash(resolve_model(str(tiny_model_dir))) == _sha(loaded)
    load_model(resolve_model(str(clone)), torch.device("cpu"))  # the decoys would not load: the plain files did


def test_a_folder_of_pickles_only_is_refused_by_name_not_hashed_as_nothing(tiny_model_dir, tmp_path):
    pickles = _renamed(tiny_model_dir, tmp_path / "bin", lambda p: p.stem + ".bin")
    ref = resolve_model(str(pickles))
    for action in (lambda: model_hash(ref), lambda: load_model(ref, torch.device("cpu"))):
        with pytest.raises(ModelError) as e:
            action()
        msg = str(e.value)
        assert "diffusion_pytorch_model.bin" in msg and "pickle" in msg and "safetensors.index.json" in msg
        assert "diffusion_pytorch_model.fp16.safetensors" not in msg and ".<variant>.safetensors" in msg
    empty = _renamed(tiny_model_dir, tmp_path / "empty", lambda p: None if "unet" in p.parts else p.name)
    with pytest.raises(ModelError, match=r"unet: no weights to load; looked for diffusion_pytorch_model.safetensors"):
        load_model(resolve_model(str(empty)), torch.device("cpu"))


def test_model_info_reads_what_the_loaded_model_will_say_without_loading(tiny_model_dir, tmp_path):
    import json

    from kaiga.families.diffusion.single_file import save_single_file

    model = load_model(resolve_model(str(tiny_model_dir)), torch.device("cpu"))
    assert model_info(resolve_model(str(tiny_model_dir))) == json.loads(json.dumps(model.info))
    single = save_single_file(model, tmp_path / "tiny.safetensors")
    assert model_info(resolve_model(str(single))) == json.loads(json.dumps(model.info))
    for ref in list_models():
        assert model_info(ref)["family"] == ref.family


def test_the_hash_is_remembered_by_path_size_and_mtime(tmp_path):
    import os

    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file({"model.diffusion_model.w": torch.zeros(4)}, str(path))
    ref = resolve_model(str(path))
    first = model_hash(ref)
    stat = path.stat()
    save_file({"model.diffusion_model.w": torch.ones(4)}, str(path))  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert model_hash(ref) == first  # not read again
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert model_hash(ref) == _sha([path]) != first
