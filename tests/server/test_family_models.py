"""A gan, vae or transformer model served like a diffusion one: the official openai client, a real server."""

from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
import torch
from PIL import Image

from kaiga.families.vae.model import ConditionalVAE, VAEFamilyConfig
from kaiga.metadata import read_metadata


@pytest.fixture
def vae_server(serve, tmp_path):
    torch.manual_seed(0)
    folder = ConditionalVAE.create(VAEFamilyConfig.tiny()).save(tmp_path / "tiny-vae")
    return serve(default_model=str(folder))


def test_a_vae_model_answers_the_openai_client_with_its_record(vae_server):
    client = openai.OpenAI(base_url=vae_server.url + "/v1", api_key="unused", max_retries=0)
    result = client.images.generate(prompt="a red car in the city", n=2, response_format="b64_json",
                                    extra_body={"seed": 5, "truncation": 0.5})
    png = base64.b64decode(result.data[1].b64_json)
    record = read_metadata(io.BytesIO(png)).record
    assert (record.family, record.seed, record.extra["truncation"]) == ("vae", 6, 0.5)
    assert Image.open(io.BytesIO(png)).size == (64, 64)

    with pytest.raises(openai.BadRequestError) as e:  # refused before queuing, naming the field
        client.images.generate(prompt="a red car", size="128x128")
    assert e.value.body["param"] == "size" and "64×64 images only" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(prompt="a red car", extra_body={"truncation": 3})
    assert e.value.body["param"] == "truncation"


def test_a1111_clients_pass_family_options_too(vae_server):
    body = {"prompt": "a red car in the city", "seed": 3, "truncation": 0.25}
    r = httpx.post(vae_server.url + "/sdapi/v1/txt2img", json=body, timeout=60)
    assert r.status_code == 200, r.text
    record = read_metadata(io.BytesIO(base64.b64decode(r.json()["images"][0]))).record
    assert (record.family, record.seed, record.extra["truncation"]) == ("vae", 3, 0.25)
    r = httpx.post(vae_server.url + "/sdapi/v1/txt2img", json={**body, "truncation": 3}, timeout=60)
    assert r.status_code == 422 and "truncation" in r.text
