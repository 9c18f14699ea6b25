"""`kaiga serve` signs what it stores and what it sends when $KAIGA_HOME/signing holds a key (issue 20, item 2),
including the A1111 API's images resized to a size the model cannot make (a new asset: signed anew)."""

from __future__ import annotations

import base64

import httpx
import torch

from kaiga.metadata import read_metadata
from kaiga.provenance.credentials import init_signing, read_credentials
from kaiga.server.settings import ServerSettings
from tests.server.conftest import RunningServer


def test_the_server_signs_stored_and_resized_images(tmp_path, tiny_model_dir):
    torch.set_num_threads(1)
    init_signing()
    server = RunningServer(ServerSettings(data_dir=tmp_path / "data", default_model=str(tiny_model_dir),
                                          poll_s=0.05)).start()
    try:
        r = httpx.post(server.url + "/sdapi/v1/txt2img", timeout=300,
                       json={"prompt": "a red car", "seed": 1, "steps": 2, "width": 600, "height": 400})
        assert r.status_code == 200, r.text
        sent = base64.b64decode(r.json()["images"][0])
        assert read_credentials(sent)["status"] == "trusted" and read_metadata(sent).record.seed == 1
        stored = list((tmp_path / "data" / "gallery").rglob("*.png"))
        assert len(stored) == 1 and read_credentials(stored[0].read_bytes())["status"] == "trusted"
    finally:
        server.stop()
