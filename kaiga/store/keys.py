"""API keys: made once, shown once, stored only as their SHA-256.

Why SHA-256 and not a slow password hash (scrypt, argon2): a key is 256 random bits, not a
password a person chose, so nobody can guess it by brute force however fast the hash is; a slow
hash defends only low-entropy secrets. A plain SHA-256 also lets the database find a key by its hash
in one indexed lookup and costs microseconds per request, where scrypt (with a salt per key) would
need a key id on the side and tens of milliseconds on every request. A stolen database still
yields no usable key.

Example:
    >>> from kaiga.store.db import open_database
    >>> db = open_database("sqlite://")
    >>> key = create_key(db, name="laptop")
    >>> key.startswith("kg-"), verify_key(db, key).name, verify_key(db, key + "x")
    (True, 'laptop', None)
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from kaiga.store.db import Database
from kaiga.store.tables import ApiKey, utcnow

KEY_PREFIX = "kg-"


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    created: datetime
    revoked: datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(db: Database, name: str = "") -> str:
    """Make a new key, store its hash, return the key itself (the only time it is seen)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    with db.session() as s:
        s.add(ApiKey(hash=hash_key(key), prefix=key[:10], name=name, created=utcnow()))
    return key


def verify_key(db: Database, key: str) -> KeyInfo | None:
    """The key's info if it is known and not revoked, else None."""
    with db.session() as s:
        row = s.scalar(select(ApiKey).where(ApiKey.hash == hash_key(key), ApiKey.revoked.is_(None)))
        return _info(row) if row is not None else None


def list_keys(db: Database) -> list[KeyInfo]:
    with db.session() as s:
        return [_info(r) for r in s.scalars(select(ApiKey).order_by(ApiKey.id))]


def revoke_key(db: Database, key_id: int) -> bool:
    with db.session() as s:
        return s.execute(update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked.is_(None))
                         .values(revoked=utcnow())).rowcount == 1


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.id, row.name, row.prefix, row.created, row.revoked)
