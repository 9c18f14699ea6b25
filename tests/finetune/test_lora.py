"""LoRA fine-tuning (kaiga finetune --method lora) on the tiny model: the file in both layouts, applied at
generation by name and weight and named in the record, the base model's pixels untouched without it, a LoRA of
another architecture and a pickle refused, and the file read by stock diffusers."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from kaiga.finetune.lora import LoraError, lora_info
from kaiga.studio import Studio


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tiny_scenes, tmp_path_factory):
    """A LoRA trained by the CLI as a user runs it, saved by name in $KAIGA_HOME/loras, and a kohya-layout twin."""
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "KAIGA_HOME": str(home), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "kaiga", "finetune", "--data", str(tiny_scenes), "--model", str(tiny_model_dir),
            "--steps", "6", "--batch-size", "4", "--lr", "3e-3", "--rank", "4", "--alpha", "4", "--sample-every", "0"]
    for name, layout in (("toy", "diffusers"), ("toy-kohya", "kohya")):
        r = subprocess.run([*base, "--out", name, "--layout", layout], env=env, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stderr
    assert "use it with --lora toy" in r.stdout or "toy-kohya" in r.stdout
    return home


def _pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im.image, np.int16) for im in images])


def test_the_file_names_its_base_rank_and_data_and_is_small(trained, tiny_model_dir):
    path = trained / "loras" / "toy.safetensors"
    info = lora_info(path)
    assert (info["method"], info["rank"], info["alpha"], info["layout"]) == ("lora", 4, 4, "diffusers")
    assert info["base"]["model"] == tiny_model_dir.name and len(info["base"]["model_hash"]) == 10
    assert info["data"]["items"] == 16 and info["data"]["licences"]  # the dataset's card, with counts
    assert path.stat().st_size < 5 * 2**20
    from safetensors import safe_open

    with safe_open(str(trained / "loras" / "toy-kohya.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any(k.startswith("lora_unet_") and k.endswith(".lora_down.weight") for k in keys)
    assert any(k.endswith(".alpha") for k in keys)


def test_a_lora_changes_the_picture_by_its_weight_and_leaves_the_base_untouched(trained, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("KAIGA_HOME", str(trained))
    studio = Studio(watermark=False)
    req = {"model": str(tiny_model_dir), "seed": 4, "steps": 3}
    base = _pixels(studio.generate("a red car", **req))
    with_lora = studio.generate("a red car", lora="toy:1.5", **req)
    assert np.abs(_pixels(with_lora) - base).max() > 2  # it changes the picture
    assert with_lora[0].record.extra["loras"][0]["name"] == "toy" and with_lora[0].record.extra["loras"][0]["weight"] == 1.5
    assert np.abs(_pixels(studio.generate("a red car", lora="toy:0", **req)) - base).max() <= 1
    np.testing.assert_array_equal(_pixels(studio.generate("a red car", **req)), base)  # off again afterwards
    kohya = _pixels(studio.generate("a red car", lora="toy-kohya:1.5", **req))
    assert np.abs(kohya - base).max() > 2  # the kohya layout is read too
    two = studio.generate("a red car", lora="toy:0.5, toy-kohya:0.5", **req)
    assert [lo["name"] for lo in two[0].record.extra["loras"]] == ["toy", "toy-kohya"]
    # AUTOMATIC1111's prompt syntax is the same request: the tag leaves the prompt, the LoRA applies
    tagged = studio.generate("a red car <lora:toy:1.5>", **req)
    assert tagged[0].record.prompt == "a red car" and tagged[0].record.extra["loras"][0]["weight"] == 1.5
    np.testing.assert_array_equal(_pixels(tagged), _pixels(with_lora))


def test_a_missing_lora_a_pickle_and_another_architecture_are_refused(trained, tiny_model_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("KAIGA_HOME", str(trained))
    studio = Studio(watermark=False)
    with pytest.raises(LoraError, match="no LoRA 'nope'.*toy"):
        studio.generate("a red car", lora="nope", model=str(tiny_model_dir), steps=1)
    with pytest.raises(LoraError, match="pickle"):
        studio.generate("a red car", lora=str(tmp_path / "x.ckpt"), model=str(tiny_model_dir), steps=1)
    with pytest.raises(LoraError, match="made for another model"):  # the bundled model's UNet is not the tiny one's
        studio.generate("a red car", lora="toy", steps=1)
    with pytest.raises(LoraError, match="weight"):
        studio.generate("a red car", lora="toy:lots", model=str(tiny_model_dir), steps=1)


def test_stock_diffusers_loads_the_file(trained, tiny_model_dir):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir / "unet")
    from diffusers.loaders.lora_pipeline import StableDiffusionLoraLoaderMixin

    state, alphas = StableDiffusionLoraLoaderMixin.lora_state_dict(str(trained / "loras" / "toy.safetensors"))
    unet.load_lora_adapter(state, network_alphas=alphas, adapter_name="toy", prefix="unet")
    assert "toy" in unet.peft_config and any("lora_A" in n for n, _ in unet.named_parameters())
    x, t = torch.randn(1, 4, 16, 16), torch.tensor(500)
    states = torch.randn(1, 16, unet.config.cross_attention_dim)
    with torch.no_grad():
        on = unet(x, t, encoder_hidden_states=states).sample
        unet.disable_adapters()
        off = unet(x, t, encoder_hidden_states=states).sample
    assert (on - off).abs().max() > 0



def test_kaiga_models_lists_the_loras(trained):
    r = subprocess.run([sys.executable, "-m", "kaiga", "models"], env={**os.environ, "KAIGA_HOME": str(trained)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "toy-kohya" in r.stdout and "kohya" in r.stdout and "LoRA directory:" in r.stdout


def test_stock_diffusers_load_lora_weights_makes_the_same_pixels_as_kaiga(trained, tiny_model_dir, monkeypatch):
    """A LoRA trained by kaiga, loaded with diffusers' own `pipeline.load_lora_weights` on a StableDiffusionPipeline
    of our folder's modules, draws what kaiga draws with `--lora` (DDIM, the same noise)."""
    from kaiga.eval.speed import max_pixel_diff, stock_pipeline
    from kaiga.families.diffusion.model import LatentDiffusion
    from kaiga.finetune.lora import apply_loras, requested_loras
    from kaiga.pipelines.text_to_image import text_to_image
    from kaiga.request import GenerationRequest

    monkeypatch.setenv("KAIGA_HOME", str(trained))
    request = GenerationRequest(prompt="a red car", steps=3, guidance=3.0, sampler="ddim")
    ours = LatentDiffusion.load(tiny_model_dir)
    base = text_to_image(ours, request, [7])
    apply_loras(ours.unet, requested_loras("toy:1.5"))
    with_lora = text_to_image(ours, request, [7])

    stock = stock_pipeline(LatentDiffusion.load(tiny_model_dir))
    stock.load_lora_weights(str(trained / "loras" / "toy.safetensors"), adapter_name="toy")
    stock.set_adapters(["toy"], [1.5])
    generator = [torch.Generator().manual_seed(7)]
    theirs = stock("a red car", num_inference_steps=3, guidance_scale=3.0, height=64, width=64, generator=generator,
                   output_type="pil").images
    assert max_pixel_diff(with_lora, theirs) <= 2  # the same LoRA, the same picture (float order aside)
    assert max_pixel_diff(with_lora, base) > 2  # and the LoRA is what makes the picture


def test_sample_grids_show_the_datasets_own_captions(tiny_model_dir, tiny_scenes, tmp_path):
    from PIL import Image

    from kaiga.data.admit import admit
    from kaiga.finetune.train import finetune_lora
    from kaiga.train.loop import LoopConfig

    finetune_lora(tiny_model_dir, tiny_scenes, tmp_path / "toy.safetensors", tmp_path / "run",
                  LoopConfig(steps=2, batch_size=2, progress=False, sample_every=2), rank=2, alpha=2)
    grid = Image.open(tmp_path / "run" / "samples" / "step0000002.png")
    assert grid.size == (8 * 64 * 2, 64 * 2)  # one image per caption, in one row of eight
    from kaiga.families.diffusion.model import LatentDiffusion
    from kaiga.finetune.train import LoraTask

    task = LoraTask(LatentDiffusion.load(tiny_model_dir), tiny_scenes, tmp_path / "x.safetensors", 2, 2, {},
                    "diffusers", batch_size=2)
    assert task.grid_prompts == [ex.captions[0] for ex in admit(tiny_scenes).examples[:8]]
