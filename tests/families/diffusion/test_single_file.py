"""Single-file (original SD layout) export and import of the latent diffusion model, offline, on tiny models."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
from kaiga.families.diffusion.single_file import (
    FORMAT,
    SingleFileError,
    load_single_file,
    looks_like_sd_single_file,
    save_single_file,
)


@pytest.fixture(scope="module")
def model() -> LatentDiffusion:
    torch.manual_seed(0)
    return LatentDiffusion.create(tiny_config()).eval()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    return save_single_file(model, tmp_path_factory.mktemp("sf") / "tiny.safetensors")


@pytest.fixture(scope="module")
def stripped(exported, tmp_path_factory):
    """The same tensors without any metadata: what a checkpoint downloaded from the internet looks like."""
    path = tmp_path_factory.mktemp("plain") / "plain.safetensors"
    save_file(load_file(exported), str(path))
    return path


@pytest.fixture(scope="module")
def config_dir(model, tmp_path_factory):
    return model.save(tmp_path_factory.mktemp("cfg") / "model")


def _outputs(m: LatentDiffusion) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    latents = torch.randn(2, 4, 16, 16, generator=g)
    ids = m.tokenize(["a red car", "two dogs"])
    with torch.no_grad():
        text = m.encode_text(ids)
        return {
            "ids": ids,
            "text": text,
            "unet": m.unet(latents, torch.tensor([10, 500]), text).sample,
            "decode": m.decode(latents),
        }


def _assert_same_outputs(a: LatentDiffusion, b: LatentDiffusion) -> None:
    oa, ob = _outputs(a), _outputs(b)
    for k in oa:
        assert torch.equal(oa[k], ob[k]), k


def test_round_trip_rebuilds_the_model_from_the_file_alone(model, exported):
    back = load_single_file(exported)
    _assert_same_outputs(model, back)
    assert back.scheduler_config == model.scheduler_config
    assert back.info == json.loads(json.dumps(model.info))  # tuples come back as lists
    assert back.tokenizer.model_max_length == model.tokenizer.model_max_length
    assert back.tokenizer.pad_token == model.tokenizer.pad_token
    assert back.dtype == torch.float32 and not back.training


def test_file_uses_the_original_layout_and_carries_kaiga_metadata(exported):
    keys = set(load_file(exported))
    for k in (
        "model.diffusion_model.input_blocks.0.0.weight",
        "model.diffusion_model.input_blocks.2.0.op.weight",  # downsample after block 0's one resnet
        "model.diffusion_model.input_blocks.3.1.transformer_blocks.0.attn2.to_k.weight",
        "model.diffusion_model.middle_block.1.proj_in.weight",
        "model.diffusion_model.middle_block.2.emb_layers.1.weight",
        "model.diffusion_model.output_blocks.1.2.conv.weight",  # upsample after a cross-attention layer
        "model.diffusion_model.out.2.weight",
        "first_stage_model.encoder.conv_in.weight",
        "first_stage_model.decoder.up.2.upsample.conv.weight",
        "first_stage_model.encoder.down.0.downsample.conv.weight",
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
        "cond_stage_model.transformer.text_model.final_layer_norm.weight",
    ):
        assert k in keys, k
    prefixes = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer.text_model.")
    assert all(k.startswith(prefixes) for k in keys)
    assert not any(w in k for k in keys for w in ("down_blocks", "up_blocks", "resnets", "mid_block"))
    with safe_open(str(exported), "pt") as f:
        meta = f.metadata()
    assert meta["kaiga.format"] == FORMAT
    for k in ("kaiga.unet_config", "kaiga.vae_config", "kaiga.text_config", "kaiga.scheduler_config",
              "kaiga.tokenizer", "kaiga.info"):
        json.loads(meta[k])


def test_without_metadata_loads_through_diffusers_with_a_config_folder(model, stripped, config_dir):
    back = load_single_file(stripped, config_dir=config_dir)
    _assert_same_outputs(model, back)
    assert back.scheduler_config["prediction_type"] == model.scheduler_config["prediction_type"]


def test_without_metadata_or_config_folder_says_what_is_needed(stripped, tmp_path):
    with pytest.raises(SingleFileError) as e:
        load_single_file(stripped)
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert "--config" in msg and "offline" in msg and "Hugging Face Hub" in msg and "'v1'" in msg
    with pytest.raises(SingleFileError, match="no unet/"):
        load_single_file(stripped, config_dir=tmp_path)


def test_half_precision_export(model, tmp_path):
    path = save_single_file(model, tmp_path / "half.safetensors", dtype=torch.float16)
    assert {t.dtype for t in load_file(path).values()} == {torch.float16}
    back = load_single_file(path)  # float32 by default
    assert back.dtype == torch.float32
    a, b = _outputs(model), _outputs(back)
    assert torch.allclose(a["unet"], b["unet"], atol=1e-2)


def test_stable_diffusion_block_structure_maps_to_known_names(tmp_path):
    """SD 1.x's UNet/VAE structure (4 blocks, 2 layers each, VAE mid attention, shortcuts) at tiny width."""
    torch.manual_seed(0)
    m = LatentDiffusion.create(tiny_config()).eval()
    m.unet = UNet2DConditionModel(
        sample_size=8, block_out_channels=(8, 8, 16, 16), layers_per_block=2, cross_attention_dim=32,
        attention_head_dim=2, norm_num_groups=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    ).eval()
    m.vae = AutoencoderKL(
        block_out_channels=(4, 8, 8, 8), layers_per_block=2, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    ).eval()
    path = save_single_file(m, tmp_path / "sd1.safetensors")
    tensors = load_file(path)
    for k in (  # names as in the SD 1.5 checkpoint
        "model.diffusion_model.input_blocks.3.0.op.weight",
        "model.diffusion_model.input_blocks.7.0.skip_connection.weight",
        "model.diffusion_model.input_blocks.8.1.proj_out.weight",
        "model.diffusion_model.output_blocks.2.1.conv.weight",
        "model.diffusion_model.output_blocks.5.2.conv.weight",
        "model.diffusion_model.output_blocks.8.2.conv.weight",
        "model.diffusion_model.output_blocks.11.0.skip_connection.weight",
        "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm3.weight",
        "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight",
        "first_stage_model.encoder.mid.attn_1.proj_out.weight",
        "first_stage_model.decoder.up.3.upsample.conv.weight",
        "first_stage_model.decoder.up.0.block.2.conv2.weight",
    ):
        assert k in tensors, k
    assert not any(k.startswith("model.diffusion_model.input_blocks.12") for k in tensors)
    assert "first_stage_model.decoder.up.0.upsample.conv.weight" not in tensors
    assert "first_stage_model.encoder.down.3.downsample.conv.weight" not in tensors
    assert tensors["first_stage_model.decoder.mid.attn_1.q.weight"].shape == (8, 8, 1, 1)  # 1x1 conv there

    back = load_single_file(path)
    g = torch.Generator().manual_seed(2)
    x, h = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 5, 32, generator=g)
    with torch.no_grad():
        assert torch.equal(back.unet(x, 3, h).sample, m.unet(x, 3, h).sample)
        assert torch.equal(back.vae.decode(x).sample, m.vae.decode(x).sample)


def test_looks_like_sd_single_file_reads_the_header(exported, stripped, config_dir, tmp_path):
    assert looks_like_sd_single_file(exported) and looks_like_sd_single_file(stripped)
    assert not looks_like_sd_single_file(config_dir / "unet" / "diffusion_pytorch_model.safetensors")
    assert not looks_like_sd_single_file(config_dir / "model_index.json")
    assert not looks_like_sd_single_file(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 10**6) + b'{"model.diffusion_model.x"')  # length beyond the file
    assert not looks_like_sd_single_file(bad)


def test_rejects_what_is_not_sd_1_or_2(tmp_path):
    xl = tmp_path / "xl.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1),
               "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": torch.zeros(1)}, str(xl))
    with pytest.raises(SingleFileError, match="SDXL"):
        load_single_file(xl)
    other = tmp_path / "other.safetensors"
    save_file({"encoder.conv_in.weight": torch.zeros(1)}, str(other))
    with pytest.raises(SingleFileError, match="not a Stable Diffusion"):
        load_single_file(other)
