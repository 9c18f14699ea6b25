"""API keys are stored only as their SHA-256."""

import hashlib

from sqlalchemy import select

from kaiga.store.db import open_database
from kaiga.store.keys import create_key, revoke_key, verify_key
from kaiga.store.tables import ApiKey


def test_only_the_hash_is_stored_and_revoked_keys_fail(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'k.db'}")
    key = create_key(db, name="ci")
    with db.session() as s:
        row = s.scalar(select(ApiKey))
    assert row.hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in (tmp_path / "k.db").read_bytes().decode("latin-1")
    info = verify_key(db, key)
    assert info.name == "ci"
    assert revoke_key(db, info.id)
    assert verify_key(db, key) is None
