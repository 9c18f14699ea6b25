import pickle

import pytest
import torch
from safetensors.torch import save_file

from kaiga.model_files import ModelError, ModelFormat, identify, list_models, model_hash, resolve_model, user_models_dir


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

    from kaiga.model_files import load_model

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    shutil.rmtree(broken / "unet")
    (broken / "unet").mkdir()
    with pytest.raises(ModelError, match="not a loadable diffusers model folder"):
        load_model(resolve_model(str(broken)), torch.device("cpu"))
