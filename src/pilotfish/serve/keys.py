"""KeyStore: API keys of `pilotfish serve`, stored hashed in the knowledge base's SQL database.

A token is shown once, when it is made; the database keeps its SHA-256 (tokens are 256 random bits, so a
fast hash is enough), a prefix to recognise it, its scope (`ask`, or `admin` which may also upload
documents) and the collections it may read (None: all).

>>> from pilotfish.knowledge.store import KnowledgeStore
>>> store = KnowledgeStore("sqlite://"); store.create()
>>> keys = KeyStore(store)
>>> key, token = keys.create("support", collections=["manuals"])
>>> keys.verify(token).collections
['manuals']
>>> keys.verify("pf_wrong") is None
True
>>> _ = keys.revoke("support"); keys.verify(token) is None
True
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from pilotfish.errors import ConfigError
from pilotfish.knowledge.store import ApiKeyRow, KnowledgeStore

SCOPES = ("ask", "admin")
TOKEN_PREFIX = "pf_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    scope: str
    collections: list[str] | None
    prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None

    @property
    def admin(self) -> bool:
        return self.scope == "admin"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scope": self.scope, "collections": self.collections, "prefix": self.prefix,
                "created_at": self.created_at.isoformat(timespec="seconds"),
                "revoked_at": self.revoked_at.isoformat(timespec="seconds") if self.revoked_at else None}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(row.id, row.name, row.scope, list(row.collections) if row.collections is not None else None,
                  row.prefix, row.created_at, row.revoked_at)


class KeyStore:
    def __init__(self, store: KnowledgeStore) -> None:
        self.store = store

    def create(self, name: str, *, scope: str = "ask", collections: Sequence[str] | None = None) -> tuple[ApiKey, str]:
        """A new key and its token (shown once; only its hash is stored)."""
        if not _NAME.match(name or ""):
            raise ConfigError(f"bad key name {name!r}: use letters, digits and . _ @ - (up to 100 characters)")
        if scope not in SCOPES:
            raise ConfigError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
        wanted = None if collections is None else sorted({c.strip() for c in collections if c.strip()})
        if wanted is not None and not wanted:
            raise ConfigError("--collections names no collection: give names such as manuals,faq, or leave it out")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.store.transaction() as session:
            if session.scalar(select(ApiKeyRow.id).where(ApiKeyRow.name == name)) is not None:
                raise ConfigError(f"a key named {name!r} exists: choose another name, or revoke it first")
            row = ApiKeyRow(name=name, token_hash=_hash(token), prefix=token[:10], scope=scope, collections=wanted,
                            created_at=_now())
            session.add(row)
            session.flush()
            return _key(row), token

    def list(self, *, revoked: bool = True) -> list[ApiKey]:
        with self.store.reading() as session:
            rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id)).all()
            return [_key(r) for r in rows if revoked or r.revoked_at is None]

    def revoke(self, name: str) -> ApiKey:
        with self.store.transaction() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name))
            if row is None:
                raise ConfigError(f"no key named {name!r}: `pilotfish keys list` shows the names")
            if row.revoked_at is None:
                row.revoked_at = _now()
            return _key(row)

    def verify(self, token: str) -> ApiKey | None:
        """The live key a token belongs to, or None (unknown, malformed or revoked)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        with self.store.reading() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.token_hash == _hash(token)))
            return None if row is None or row.revoked_at is not None else _key(row)
