"""Who turned sharing with other systems off, held in memory so no request or event reads it."""

from __future__ import annotations

from typing import Protocol


class SharingStore(Protocol):
    async def people_not_sharing(self, team_id: str) -> set[str]: ...


class SharingIndex:
    """Loaded at start; the settings command tells it of each change it saves."""

    def __init__(self, store: SharingStore, team_id: str) -> None:
        self._store = store
        self._team_id = team_id
        self._not_sharing: set[str] = set()

    async def load(self) -> None:
        self._not_sharing = await self._store.people_not_sharing(self._team_id)

    def sharing_changed(self, user_id: str, share: bool) -> None:
        if share:
            self._not_sharing.discard(user_id)
        else:
            self._not_sharing.add(user_id)

    def __contains__(self, user_id: object) -> bool:
        """Whether this person is hidden from other systems by their own choice."""
        return user_id in self._not_sharing

    def __len__(self) -> int:
        return len(self._not_sharing)
