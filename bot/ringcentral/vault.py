"""RingCentral's session kept across restarts: its tokens encrypted with Fernet, then stored."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken

from bot.config import Secret
from bot.store import StoreError

log = logging.getLogger(__name__)


class SessionStore(Protocol):
    async def rc_session(self, owner: str) -> str | None: ...
    async def save_rc_session(self, owner: str, data: str) -> None: ...
    async def forget_rc_session(self) -> None: ...


class SessionVault:
    """Saves and loads the SDK's token data (and the client's last WebSocket token), sealed with
    a key the database never holds.

    The row is named by a digest of the server, the app and the JWT, so a session made with
    other credentials is never offered to these. Nothing here raises: a store that cannot be
    read or written, or a key that opens nothing, only means the next start logs in again.
    """

    def __init__(
        self,
        store: SessionStore,
        key: Secret,
        *,
        server_url: str,
        client_id: str,
        jwt: Secret,
    ) -> None:
        self._store = store
        self._fernet = Fernet(key.reveal())
        seed = "\n".join((server_url.rstrip("/"), client_id, jwt.reveal()))
        self._owner = hashlib.sha256(seed.encode()).hexdigest()

    async def load(self) -> dict[str, Any] | None:
        try:
            sealed = await self._store.rc_session(self._owner)
        except StoreError as exc:
            log.warning("RingCentral's saved session could not be read (%s); logging in", exc)
            return None
        if sealed is None:
            return None
        try:
            data = json.loads(self._fernet.decrypt(sealed.encode()))
        except (InvalidToken, ValueError):
            log.info(
                "RingCentral's saved session does not open with RINGCENTRAL_TOKEN_KEY "
                "(the key changed?); logging in with the JWT instead"
            )
            return None
        return data if isinstance(data, dict) else None

    async def save(self, data: Mapping[str, Any]) -> None:
        sealed = self._fernet.encrypt(json.dumps(dict(data)).encode()).decode()
        try:
            await self._store.save_rc_session(self._owner, sealed)
        except StoreError as exc:
            log.warning("RingCentral's session could not be saved (%s); a restart logs in", exc)

    async def forget(self) -> None:
        try:
            await self._store.forget_rc_session()
        except StoreError as exc:
            log.warning("RingCentral's saved session could not be removed (%s)", exc)
