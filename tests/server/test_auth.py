"""API keys over HTTP: 401 in OpenAI's shape without one, the key works, only its hash is stored."""

import hashlib

import httpx
import openai
import pytest
from sqlalchemy import select

from kaiga.store.tables import ApiKey


def test_keys_are_required_and_stored_hashed(serve, run_kaiga):
    server = serve(require_keys=True)
    key = run_kaiga("keys", "create", "--name", "laptop", "--db", server.settings.database_url()).stdout.strip()
    assert key.startswith("kg-")

    no_key = httpx.post(server.url + "/v1/images/generations", json={"prompt": "a red car"})
    assert no_key.status_code == 401
    assert no_key.json()["error"]["code"] == "invalid_api_key" and no_key.json()["error"]["type"] == "invalid_request_error"

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key=key + "x", max_retries=0).models.list()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    assert client.images.generate(prompt="a red car", size="64x64", extra_body={"steps": 1}).data[0].url
    assert httpx.get(server.url + "/sdapi/v1/samplers").status_code == 401  # every API, not only /v1
    assert httpx.get(server.url + "/sdapi/v1/samplers", auth=("anyone", key)).status_code == 200

    with server.state.db.session() as s:
        stored = s.scalars(select(ApiKey.hash)).all()
    assert stored == [hashlib.sha256(key.encode()).hexdigest()]


def test_the_generating_user_is_the_key_name(serve):
    from kaiga.store.keys import create_key

    server = serve(require_keys=True)
    key = create_key(server.state.db, name="ann")
    job = httpx.post(server.url + "/v1/jobs", json={"prompt": "a car", "steps": 1, "width": 64, "height": 64},
                     headers={"Authorization": f"Bearer {key}"}).json()
    assert job["user"] == "ann"
