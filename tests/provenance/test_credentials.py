"""Signed content credentials (issue 20, item 2): the local signing identity, signing a PNG, reading it back."""

from __future__ import annotations

import io
import stat

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from PIL import Image

from kaiga.metadata import GenerationRecord, png_bytes, read_metadata
from kaiga.provenance.credentials import (
    DIGITAL_SOURCE_TYPE,
    SigningExists,
    has_signing_key,
    init_signing,
    read_credentials,
    sign_by_default,
    sign_jpeg,
    sign_png,
)

RECORD = GenerationRecord(prompt="a red car in the snow", seed=7, sampler="ddim", steps=2, guidance=3.0,
                          width=64, height=64, model="scenes-diffusion", model_hash="0123456789")


@pytest.fixture
def home(tmp_path):
    init_signing(tmp_path)
    return tmp_path


def picture(size: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_init_signing_makes_a_root_and_an_end_entity_as_c2pa_asks(tmp_path):
    files = init_signing(tmp_path)
    assert files.folder == tmp_path / "signing" and files.complete() and has_signing_key(tmp_path)
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    leaf, root = x509.load_pem_x509_certificates(files.chain.read_bytes())
    assert root.public_bytes(Encoding.PEM) == files.root.read_bytes()
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert (leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
            == root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest)


def test_init_signing_refuses_to_replace_a_key_unless_forced(home):
    key = (home / "signing" / "key.pem").read_bytes()
    with pytest.raises(SigningExists):
        init_signing(home)
    assert (home / "signing" / "key.pem").read_bytes() == key
    init_signing(home, force=True)
    assert (home / "signing" / "key.pem").read_bytes() != key


def test_a_signed_png_is_trusted_names_its_model_and_keeps_pixels_and_record(home):
    image = picture()
    plain = png_bytes(image, RECORD)
    signed = sign_png(plain, RECORD, home=home)
    report = read_credentials(signed, home=home)
    assert report["status"] == "trusted", report
    assert report["model"] == {"name": "scenes-diffusion", "hash": "0123456789", "family": "diffusion"}
    [action] = report["actions"]
    assert action["action"] == "c2pa.created" and action["digitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert action["softwareAgent"]["name"] == "kaiga"
    assert report["soft_binding"] is None
    assert read_metadata(signed).record == RECORD  # kaiga's and A1111's text chunks survive signing
    assert read_metadata(signed).parameters["Model hash"] == "0123456789"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(signed))), np.asarray(image))  # no pixel changes
    assert b"caBX" in signed and len(signed) - len(plain) < 8_000  # no thumbnail: a few KB, not 80


def test_the_soft_binding_hook_records_the_watermark_payload(home):
    signed = sign_png(png_bytes(picture(), RECORD), RECORD, home=home, soft_binding="a1b2c3d4")
    assert read_credentials(signed, home=home)["soft_binding"] == "a1b2c3d4"


def test_a_byte_changed_after_signing_is_tampered(home):
    signed = bytearray(sign_png(png_bytes(picture(), RECORD), RECORD, home=home))
    signed[signed.index(b"IDAT") + 30] ^= 0xFF  # one byte of the image data
    report = read_credentials(bytes(signed), home=home)
    assert report["status"] == "tampered" and "mismatch" in report["reason"]
    edited = sign_png(png_bytes(picture(), RECORD), RECORD, home=home).replace(b"a red car", b"a red cat")
    assert read_credentials(edited, home=home)["status"] == "tampered"  # the record is covered too


def test_a_signature_under_another_root_is_untrusted(home, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    init_signing(other)
    signed = sign_png(png_bytes(picture(), RECORD), RECORD, home=other)
    assert read_credentials(signed, home=other)["status"] == "trusted"
    assert read_credentials(signed, home=home)["status"] == "untrusted"


def test_no_credentials_and_no_key(tmp_path):
    plain = png_bytes(picture(), RECORD)
    assert read_credentials(plain, home=tmp_path) == {"status": "none", "reason": "no content credentials"}
    assert read_credentials(b"not an image", home=tmp_path)["status"] == "none"
    with pytest.raises(FileNotFoundError, match="init-signing"):
        sign_png(plain, RECORD, home=tmp_path)


def test_signed_by_default_the_identity_made_on_first_use(tmp_path, monkeypatch):
    """Every write is signed: the first one makes the identity (once; a second home gets its own), and
    KAIGA_SIGNING=off writes the bytes unchanged; a half-made signing folder is left alone, unsigned."""
    plain = png_bytes(picture(), RECORD)
    signed = sign_by_default(plain, RECORD, home=tmp_path)
    assert read_credentials(signed, home=tmp_path)["status"] == "trusted"
    key = (tmp_path / "signing" / "key.pem").read_bytes()
    assert read_credentials(sign_by_default(plain, RECORD, home=tmp_path), home=tmp_path)["status"] == "trusted"
    assert (tmp_path / "signing" / "key.pem").read_bytes() == key
    assert [p.name for p in tmp_path.iterdir()] == ["signing"]  # no temporary folder left behind
    monkeypatch.setenv("KAIGA_SIGNING", "off")
    assert sign_by_default(plain, RECORD, home=tmp_path / "other") is plain and not (tmp_path / "other").exists()
    monkeypatch.delenv("KAIGA_SIGNING")
    (tmp_path / "half" / "signing").mkdir(parents=True)
    (tmp_path / "half" / "signing" / "root.pem").write_text("")
    assert sign_by_default(plain, RECORD, home=tmp_path / "half") is plain


def test_jpeg_is_signed_too(home):
    buf = io.BytesIO()
    picture().save(buf, format="JPEG", quality=90)
    assert read_credentials(sign_jpeg(buf.getvalue(), RECORD, home=home), home=home)["status"] == "trusted"


def test_the_servers_gallery_signs_with_the_users_key_whatever_its_data_dir(tmp_path, monkeypatch):
    from kaiga.server.app import build_state
    from kaiga.server.settings import ServerSettings

    monkeypatch.setenv("KAIGA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAIGA_SIGNING", "off")
    state = build_state(ServerSettings(data_dir=tmp_path / "data", run_worker=False))
    with state.db.session() as s:
        first = state.gallery.add(s, picture(), RECORD)
    unsigned = state.gallery.image(first)
    assert read_credentials(state.gallery.file(unsigned.sha256).read_bytes())["status"] == "none"
    monkeypatch.delenv("KAIGA_SIGNING")  # signed again: the identity is made in $KAIGA_HOME, not in --data-dir
    with state.db.session() as s:
        second = state.gallery.add(s, picture(), RECORD)  # the same image: now a second, signed file
    signed = state.gallery.image(second)
    data = state.gallery.file(signed.sha256).read_bytes()
    assert read_credentials(data)["status"] == "trusted" and read_metadata(data).record == RECORD
    assert (tmp_path / "home" / "signing" / "key.pem").exists() and not (tmp_path / "data" / "signing").exists()
    state.db.engine.dispose()
