"""Signed content credentials (C2PA): a local signing identity, signing PNG/JPEG bytes, reading them back.

Why c2pa-python: it is the Content Authenticity Initiative's own binding of the reference C2PA library
(c2pa-rs), reads and writes the manifest store (JUMBF in a PNG `caBX` chunk or JPEG APP11) that other
C2PA tools read, and signs fully offline with an ES256 key and certificate chain made here with
`cryptography`: no certificate authority, no timestamp server. Writing C2PA by hand would mean
JUMBF, CBOR and COSE signatures: exactly what a well-kept library exists for.

The signing identity lives in `$KAIGA_HOME/signing/` (`init_signing`, i.e. `kaiga keys init-signing`):
a self-made root certificate (`root.pem`, the trust anchor `read_credentials` validates against), the
end-entity certificate chain (`chain.pem`) and its private key (`key.pem`, mode 0600). The root's own
key is used once, to issue the end-entity certificate, and then thrown away: nothing more can be
issued under that root, so there is no second secret to guard.

Who signs: `kaiga generate`, `Studio`'s `GeneratedImage.save` and `kaiga serve` (its gallery and the
A1111 API's resized images) call `sign_by_default`, which signs every image: where `$KAIGA_HOME/signing`
holds no identity yet, the first write makes one (as `kaiga keys init-signing` would, said once in the log),
so no output leaves unsigned. `KAIGA_SIGNING=off` writes unsigned files instead. The server signs with the key in
$KAIGA_HOME even when `--data-dir` puts its database and gallery elsewhere: the key is the person's
identity, not the database's, and `kaiga verify` trusts the same root.

Signing is the last step on an image's final bytes: the manifest hashes everything else in the file
(kaiga's record and A1111's `parameters` chunks included), so any later change shows as tampering.
It changes no pixel: only a chunk is added.

Example:
    >>> import io, tempfile
    >>> from PIL import Image
    >>> from kaiga.metadata import GenerationRecord, png_bytes
    >>> home = Path(tempfile.mkdtemp())
    >>> files = init_signing(home)
    >>> rec = GenerationRecord(prompt="a red car", seed=1, sampler="ddim", steps=2, guidance=3.0,
    ...     width=64, height=64, model="scenes-diffusion", model_hash="0123456789")
    >>> signed = sign_png(png_bytes(Image.new("RGB", (64, 64), "red"), rec), rec, home=home)
    >>> report = read_credentials(signed, home=home)
    >>> report["status"], report["model"]["name"], report["model"]["hash"]
    ('trusted', 'scenes-diffusion', '0123456789')
    >>> read_credentials(png_bytes(Image.new("RGB", (8, 8)), rec), home=home)["status"]
    'none'
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaiga.metadata import GenerationRecord
from kaiga.paths import model_home
from kaiga.version import __version__

__all__ = ["DIGITAL_SOURCE_TYPE", "SigningError", "SigningExists", "SigningFiles", "has_signing_key", "init_signing",
           "ensure_signing", "read_credentials", "sign_by_default", "sign_image", "sign_jpeg", "sign_png",
           "signing_dir", "signing_files", "signing_on"]

log = logging.getLogger(__name__)

# IPTC's term for media made by a model trained on sampled content (what every kaiga family is).
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
MODEL_ASSERTION = "org.kaiga.model"  # our own assertion: the model's name, hash and family
SOFT_BINDING_ALG = "org.kaiga.watermark.1"  # the soft binding's algorithm name, for the watermark to come
SIGNING_ENV = "KAIGA_SIGNING"  # "off": kaiga writes unsigned images
CERT_DAYS = 3650  # a local identity; ten years, so images stay verifiable for a long time
MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}


class SigningError(RuntimeError):
    """The signing identity is there but cannot sign (a damaged key or certificate file)."""


class SigningExists(FileExistsError):
    """A signing identity is already there; replacing it needs `force`."""


@dataclass(frozen=True)
class SigningFiles:
    """Where a signing identity lies: the trust anchor, the certificate chain and the private key."""

    folder: Path

    @property
    def root(self) -> Path:
        return self.folder / "root.pem"

    @property
    def chain(self) -> Path:
        return self.folder / "chain.pem"

    @property
    def key(self) -> Path:
        return self.folder / "key.pem"

    def complete(self) -> bool:
        return self.root.is_file() and self.chain.is_file() and self.key.is_file()


def signing_dir(home: Path | None = None) -> Path:
    """`<home>/signing`, by default `$KAIGA_HOME/signing`."""
    return Path(home if home is not None else model_home()) / "signing"


def signing_files(home: Path | None = None) -> SigningFiles:
    return SigningFiles(signing_dir(home))


def has_signing_key(home: Path | None = None) -> bool:
    """Whether `home` (by default $KAIGA_HOME) holds a complete signing identity."""
    return signing_files(home).complete()


def signing_on() -> bool:
    """Whether kaiga signs what it writes: yes unless $KAIGA_SIGNING is off (or 0, no, false)."""
    return os.environ.get(SIGNING_ENV, "").strip().lower() not in ("off", "0", "no", "false")


def ensure_signing(home: Path | None = None) -> bool:
    """Whether images written for `home` are signed: `signing_on()`, with the identity made on first use.

    The identity is built in a folder of its own and renamed into place, so two processes writing their first
    images at once end with one identity, never a half-written one; a `signing/` folder that is there but
    incomplete is left alone (and nothing signed) for `kaiga keys init-signing --force` to remake.
    """
    import shutil
    import uuid

    if not signing_on():
        return False
    files = signing_files(home)
    if files.complete():
        return True
    if not files.folder.exists():
        tmp = files.folder.with_name(f".signing-{uuid.uuid4().hex[:8]}")
        try:
            make_identity(tmp)
            os.rename(tmp, files.folder)  # fails if another process got there first: its identity stands
            log.warning("made a signing identity for content credentials in %s (kaiga keys init-signing makes it "
                        "anew; KAIGA_SIGNING=off writes unsigned images)", files.folder)
        except OSError:
            pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return files.complete()


# --- the signing identity -------------------------------------------------------------------


def init_signing(home: Path | None = None, *, force: bool = False, name: str = "kaiga") -> SigningFiles:
    """Make a local P-256 root CA and an end-entity signing certificate and key under `<home>/signing`.

    The end entity is what C2PA asks of a signer: not a CA, key usage digitalSignature, extended key
    usage emailProtection, subject and authority key identifiers. Raises SigningExists if any of the
    files is there, unless `force`.
    """
    files = signing_files(home)
    present = [p for p in (files.root, files.chain, files.key) if p.exists()]
    if present and not force:
        raise SigningExists(f"a signing identity is already at {files.folder} ({', '.join(p.name for p in present)})")
    return make_identity(files.folder, name)


def make_identity(folder: Path, name: str = "kaiga") -> SigningFiles:
    """The root certificate, chain and key of `init_signing`, written into `folder` (made if missing)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    files = SigningFiles(Path(folder))
    files.folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)  # a little slack for clock skew
    until = now + dt.timedelta(days=CERT_DAYS)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} local root"),
                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(key_cert_sign=True), critical=True)
            .add_extension(root_ski, critical=False)
            .sign(root_key, hashes.SHA256()))

    key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} content signer"),
                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
    leaf = (x509.CertificateBuilder().subject_name(leaf_name).issuer_name(root_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False)
            .sign(root_key, hashes.SHA256()))

    pem = serialization.Encoding.PEM
    _write(files.root, root.public_bytes(pem), 0o644)
    _write(files.chain, leaf.public_bytes(pem) + root.public_bytes(pem), 0o644)
    _write(files.key, key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
    return files


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False):
    from cryptography import x509

    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
                         crl_sign=key_cert_sign, encipher_only=False, decipher_only=False)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to a file created with `mode` from the start (a key is never readable by others)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        os.fchmod(f.fileno(), mode)  # the umask may have taken bits away; mode is what we mean
    os.replace(tmp, path)


# --- signing --------------------------------------------------------------------------------


def _context(files: SigningFiles | None = None):
    """A c2pa Context: no thumbnail (it would be 10x a 64² PNG), and `files`' root as the trust anchor."""
    import c2pa

    settings: dict[str, Any] = {"builder": {"thumbnail": {"enabled": False}}}
    if files is not None and files.root.is_file():
        settings["trust"] = {"trust_anchors": files.root.read_text()}
        settings["verify"] = {"verify_trust": True}
    return c2pa.Context(settings=c2pa.Settings.from_dict(settings))


def manifest_definition(record: GenerationRecord, mime: str, soft_binding: str | None = None) -> dict[str, Any]:
    """The C2PA manifest kaiga signs: created by a trained model (which one, by name and hash), by kaiga."""
    agent = {"name": "kaiga", "version": __version__}
    assertions: list[dict[str, Any]] = [
        {"label": "c2pa.actions.v2", "data": {"actions": [{
            "action": "c2pa.created",
            "digitalSourceType": DIGITAL_SOURCE_TYPE,
            "softwareAgent": agent,
            "description": f"generated by the {record.family} model {record.model} [{record.model_hash}]",
        }]}},
        {"label": MODEL_ASSERTION, "data": {"name": record.model, "hash": record.model_hash,
                                            "family": record.family}},
    ]
    if soft_binding is not None:
        # C2PA soft binding (spec 2.x, section "Soft Binding"): ties the manifest to a watermark that
        # survives re-encoding, so a copy stripped of its manifest can be matched back to it. The value is
        # the invisible watermark's payload (kaiga.provenance.watermark), 8 hex digits.
        assertions.append({"label": "c2pa.soft-binding", "data": {
            "alg": SOFT_BINDING_ALG, "blocks": [{"scope": {}, "value": soft_binding}]}})
    return {"claim_generator_info": [agent], "title": f"kaiga: {record.prompt[:80]}", "format": mime,
            "assertions": assertions}


def sign_image(data: bytes, record: GenerationRecord, *, fmt: str = "png", home: Path | None = None,
               soft_binding: str | None = None) -> bytes:
    """`data` (a whole PNG or JPEG file) with a C2PA manifest signed by the identity in `<home>/signing`.

    `soft_binding`: the invisible watermark's payload, recorded as a `c2pa.soft-binding` assertion; by
    default the one the record says the image carries (`extra.watermark`, written by the Studio).
    Raises FileNotFoundError when there is no signing identity (run `kaiga keys init-signing`).
    """
    import c2pa

    files = signing_files(home)
    if not files.complete():
        raise FileNotFoundError(f"no signing key in {files.folder}: run `kaiga keys init-signing`")
    mime = MIME_TYPES[fmt]
    if soft_binding is None:
        soft_binding = record.extra.get("watermark")
    dest = io.BytesIO()
    try:
        info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, files.chain.read_bytes(), files.key.read_bytes(), None)
        with _context(files) as context, c2pa.Signer.from_info(info) as signer, \
                c2pa.Builder(manifest_definition(record, mime, soft_binding), context) as builder:
            builder.sign(signer, mime, io.BytesIO(data), dest)
    except c2pa.C2paError as e:
        raise SigningError(f"cannot sign with the key in {files.folder} ({e}); "
                           "remake it with `kaiga keys init-signing --force`") from e
    return dest.getvalue()


def sign_by_default(png: bytes, record: GenerationRecord, *, home: Path | None = None,
                    soft_binding: str | None = None) -> bytes:
    """`png` signed by the identity in `<home>/signing` (default $KAIGA_HOME/signing), made on first use
    (`ensure_signing`); unchanged only where $KAIGA_SIGNING is off (then c2pa is not even imported).

    What kaiga's writers call as the last step on a PNG's bytes.
    """
    if not ensure_signing(home):
        return png
    return sign_png(png, record, home=home, soft_binding=soft_binding)


def sign_png(png_bytes: bytes, record: GenerationRecord, *, home: Path | None = None,
             soft_binding: str | None = None) -> bytes:
    """The PNG with a signed C2PA manifest added (see `sign_image`); pixels and text chunks unchanged."""
    return sign_image(png_bytes, record, fmt="png", home=home, soft_binding=soft_binding)


def sign_jpeg(jpeg_bytes: bytes, record: GenerationRecord, *, home: Path | None = None,
              soft_binding: str | None = None) -> bytes:
    """The JPEG with a signed C2PA manifest added (see `sign_image`)."""
    return sign_image(jpeg_bytes, record, fmt="jpeg", home=home, soft_binding=soft_binding)


# --- reading --------------------------------------------------------------------------------


def _mime_of(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return None


def read_credentials(data: bytes, *, home: Path | None = None) -> dict[str, Any]:
    """The content credentials of an image file's bytes, validated with `<home>/signing/root.pem` as trust anchor.

    Returns {"status", "reason", ...}: status is "trusted" (valid and signed under the local root),
    "untrusted" (intact, but signed by someone the anchor does not vouch for), "tampered" (the
    signature or a hash does not match: the file changed after signing), "invalid" (a manifest
    that cannot be read) or "none" (no content credentials). A signed manifest adds "signer",
    "model" (name, hash, family), "actions", "soft_binding" and "validation" (c2pa's codes).
    """
    import c2pa

    mime = _mime_of(data)
    if mime is None:
        return {"status": "none", "reason": "not a PNG or JPEG file"}
    try:
        with _context(signing_files(home)) as context, c2pa.Reader(mime, io.BytesIO(data), None, context) as reader:
            store = json.loads(reader.json())
    except c2pa.C2paError as e:
        text = str(e)
        if "ManifestNotFound" in type(e).__name__ or "no JUMBF" in text.lower() or "not found" in text.lower():
            return {"status": "none", "reason": "no content credentials"}
        return {"status": "invalid", "reason": text}
    return _report(store)


def _report(store: dict[str, Any]) -> dict[str, Any]:
    manifest = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    results = store.get("validation_results", {}).get("activeManifest", {})
    failures = [f"{s.get('code')}: {s.get('explanation', '')}".strip() for s in results.get("failure", [])]
    state = store.get("validation_state", "")
    untrusted = [f for f in failures if "signingCredential.untrusted" in f]
    if failures and len(untrusted) < len(failures):
        status, reason = "tampered", "; ".join(f for f in failures if f not in untrusted)
    elif untrusted:
        status, reason = "untrusted", "signed, but not by a certificate under the local trust anchor"
    elif state == "Trusted":
        status, reason = "trusted", "valid and signed under the local trust anchor"
    else:
        status, reason = "untrusted", f"validation state {state or 'unknown'}"
    assertions = {a.get("label"): a.get("data", {}) for a in manifest.get("assertions", [])}
    actions = next((d.get("actions", []) for k, d in assertions.items() if k and k.startswith("c2pa.actions")), [])
    soft = assertions.get("c2pa.soft-binding")
    return {
        "status": status,
        "reason": reason,
        "signer": manifest.get("signature_info", {}).get("common_name") or manifest.get("signature_info", {}).get("issuer"),
        "claim_generator": manifest.get("claim_generator_info", []),
        "model": assertions.get(MODEL_ASSERTION),
        "actions": actions,
        "soft_binding": (soft.get("blocks") or [{}])[0].get("value") if soft else None,
        "validation": {"state": state, "failures": failures},
    }
