"""API keys: how they are made, hashed and checked, and the scopes they carry."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Final, Protocol

from bot.errors import BotError
from bot.store import ApiKeyRecord, StoreError

log = logging.getLogger(__name__)

KEY_PREFIX: Final = "rcs_"
_KEY_SHAPE: Final = re.compile(r"rcs_[A-Za-z0-9_-]{43}")
"""32 random bytes, base64url: what `new_key` makes. Anything else is refused unread."""
NAME_LIMIT: Final = 100
OUTAGE_GRACE: Final = 900.0
"""Seconds after its last check in the database that a key still opens reads while the database
is unreachable: answering from memory is what a replica does then, and no key can be revoked
meanwhile (revoking needs the database)."""
REMEMBERED_KEYS: Final = 10_000


class Scope(StrEnum):
    AVAILABILITY_READ = "availability:read"
    WEBHOOKS_WRITE = "webhooks:write"
    METRICS_READ = "metrics:read"


class ApiKeyError(BotError):
    """A key cannot be made as asked (bad name or scope)."""


class KeyStore(Protocol):
    async def add_api_key(
        self, key_id: str, name: str, scopes: tuple[str, ...], key_hash: str
    ) -> ApiKeyRecord: ...
    async def api_key_by_hash(self, key_hash: str) -> tuple[ApiKeyRecord, str] | None: ...
    async def api_keys(self) -> list[ApiKeyRecord]: ...
    async def revoke_api_key(self, key_id: str) -> ApiKeyRecord | None: ...


def hash_key(key: str) -> str:
    # The keys are 256 random bits, so a fast hash is enough: nobody can guess one to test.
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """Makes, lists, revokes and checks keys; the store keeps only their hashes."""

    def __init__(self, store: KeyStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        # Digest → (record, when the database last vouched for it); used only while it is away.
        self._vouched: OrderedDict[str, tuple[ApiKeyRecord, float]] = OrderedDict()
        self._away = False

    async def create(self, name: str, scopes: Iterable[str]) -> tuple[ApiKeyRecord, str]:
        """A new key and its record; the key is returned once and never stored."""
        name = name.strip()
        if not name or len(name) > NAME_LIMIT or not name.isprintable():
            raise ApiKeyError(f"the name must be 1 to {NAME_LIMIT} printable characters")
        wanted: list[str] = []
        for scope in scopes:
            if scope not in {s.value for s in Scope}:
                known = ", ".join(s.value for s in Scope)
                raise ApiKeyError(f"unknown scope {scope!r}; the scopes are {known}")
            if scope not in wanted:
                wanted.append(scope)
        if not wanted:
            raise ApiKeyError("a key needs at least one scope")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = "key_" + secrets.token_hex(8)
        record = await self._store.add_api_key(key_id, name, tuple(wanted), hash_key(key))
        return record, key

    async def authenticate(self, key: str) -> ApiKeyRecord | None:
        """The active key this is, or None; a malformed key never reaches the database."""
        if not _KEY_SHAPE.fullmatch(key):
            return None
        digest = hash_key(key)
        try:
            found = await self._store.api_key_by_hash(digest)
        except StoreError:
            return self._from_memory(digest)
        if self._away:
            self._away = False
            log.info("API keys are checked in the database again")
        if found is None:
            self._vouched.pop(digest, None)
            return None
        record, stored = found
        if not hmac.compare_digest(stored, digest) or not record.active:
            self._vouched.pop(digest, None)
            return None
        self._vouched[digest] = (record, self._clock())
        self._vouched.move_to_end(digest)
        while len(self._vouched) > REMEMBERED_KEYS:
            self._vouched.popitem(last=False)
        return record

    def _from_memory(self, digest: str) -> ApiKeyRecord | None:
        """The database is away: a key it vouched for lately still opens what it opened."""
        if not self._away:
            self._away = True
            log.warning("the database is unreachable: API keys checked lately are trusted")
        vouched = self._vouched.get(digest)
        if vouched is None or self._clock() - vouched[1] > OUTAGE_GRACE:
            raise StoreError("the database is unreachable and this key was not checked lately")
        return vouched[0]

    async def list(self) -> list[ApiKeyRecord]:
        return await self._store.api_keys()

    async def revoke(self, key_id: str) -> ApiKeyRecord | None:
        return await self._store.revoke_api_key(key_id)
