"""Sets a user's own RingCentral presence status (`userStatus`) through the presence API."""

from __future__ import annotations

from typing import Any, Final, Protocol

from bot.presence import PresenceStatus
from bot.ringcentral.client import RingCentralError

PRESENCE_PATH: Final = "/restapi/v1.0/account/~/extension/{extension_id}/presence"


class PresenceApi(Protocol):
    async def put(self, path: str, body: Any = None) -> Any: ...


class UserStatusWriter:
    """PUT `.../extension/{id}/presence` with `userStatus` (Medium group, EditPresence).

    What RingCentral answers is the presence after the change; its `userStatus` is returned so
    the caller knows what now holds. The change also reaches our subscription as an event.
    """

    def __init__(self, client: PresenceApi) -> None:
        self._client = client

    async def set_user_status(
        self, extension_id: str, status: PresenceStatus
    ) -> PresenceStatus | None:
        """Set it; returns the `userStatus` RingCentral reports afterwards (None if unsaid).

        Raises:
            RingCentralError: refused (no EditPresence, not a user), rate limited or unavailable.
        """
        if not extension_id.isdigit():
            raise RingCentralError("extension id must be digits")
        response = await self._client.put(
            PRESENCE_PATH.format(extension_id=extension_id), {"userStatus": status.value}
        )
        body = getattr(response, "body", None)
        found = body.get("userStatus") if isinstance(body, dict) else None
        try:
            return PresenceStatus(found) if isinstance(found, str) else None
        except ValueError:
            return None
