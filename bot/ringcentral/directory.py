"""The account's enabled User extensions, cached and refreshed on a timer and on list events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from cachetools import TTLCache

log = logging.getLogger(__name__)

EXTENSIONS_PATH: Final = "/restapi/v1.0/account/~/extension"
LISTING_QUERY: Final[Mapping[str, str]] = {"type": "User", "status": "Enabled", "perPage": "1000"}


def normalise_email(email: str) -> str:
    """Emails match Slack's case-insensitively; RingCentral admins type capitals."""
    return email.strip().casefold()


@dataclass(frozen=True, slots=True)
class Extension:
    """A person's extension as far as the bot cares: no phone numbers are kept."""

    id: str
    number: str
    name: str
    email: str | None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Extension | None:
        extension_id = record.get("id")
        if not isinstance(extension_id, int | str) or isinstance(extension_id, bool):
            return None
        contact = record.get("contact") if isinstance(record.get("contact"), dict) else {}
        email = contact.get("email") if isinstance(contact, dict) else None
        return cls(
            id=str(extension_id),
            number=str(record.get("extensionNumber") or ""),
            name=str(record.get("name") or ""),
            email=normalise_email(email) if isinstance(email, str) and email.strip() else None,
        )


@dataclass(frozen=True, slots=True)
class DirectoryChange:
    added: tuple[Extension, ...]
    removed: tuple[Extension, ...]
    changed: tuple[Extension, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


class PagedSource(Protocol):
    def get_records(
        self, path: str, query: Mapping[str, Any] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]: ...


class StoredExtension(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def number(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def email(self) -> str | None: ...


class StoredListing(Protocol):
    """Where the leader keeps the listing for replicas that do not talk to RingCentral."""

    async def stored_extensions(self) -> Sequence[StoredExtension]: ...


class _Listing:
    """One complete listing with its indexes, replaced whole so readers never see half of one."""

    __slots__ = ("by_email", "by_id", "by_number")

    def __init__(self, extensions: list[Extension]) -> None:
        self.by_id = {e.id: e for e in extensions}
        self.by_number = {e.number: e for e in extensions if e.number}
        self.by_email: dict[str, Extension] = {}
        for extension in extensions:
            if extension.email and extension.email not in self.by_email:
                self.by_email[extension.email] = extension


class Directory:
    """Enabled User extensions, fetched in pages of 1,000 and kept for `max_age` seconds."""

    def __init__(
        self,
        source: PagedSource,
        *,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        on_listing: Callable[[list[Extension]], Awaitable[None]] | None = None,
    ) -> None:
        self._source = source
        self._on_listing = on_listing
        self._cache: TTLCache[str, _Listing] = TTLCache(maxsize=1, ttl=max_age, timer=clock)
        self._current = _Listing([])
        self._lock = asyncio.Lock()
        self.refreshes = 0

    async def refresh(self) -> DirectoryChange:
        """Fetch the listing now (one at a time) and report what changed since the last one."""
        async with self._lock:
            return await self._fetch()

    async def ensure_fresh(self) -> DirectoryChange:
        """Refresh only if the cached listing has expired."""
        async with self._lock:
            if "listing" in self._cache:
                return DirectoryChange((), (), ())
            return await self._fetch()

    def invalidate(self) -> None:
        self._cache.clear()

    async def _fetch(self) -> DirectoryChange:
        extensions: list[Extension] = []
        async for page in self._source.get_records(EXTENSIONS_PATH, LISTING_QUERY):
            for record in page:
                # The filter is ours to trust only so far: a listing can lag a type change.
                if record.get("type", "User") != "User" or record.get("status") == "Disabled":
                    continue
                extension = Extension.from_record(record)
                if extension is not None:
                    extensions.append(extension)
        return await self._replace(extensions)

    async def adopt(self, stored: Sequence[StoredExtension]) -> DirectoryChange:
        """Take the listing the leader stored (a replica that does not talk to RingCentral)."""
        async with self._lock:
            return await self._replace(
                [Extension(e.id, e.number, e.name, e.email) for e in stored], share=False
            )

    async def _replace(self, extensions: list[Extension], *, share: bool = True) -> DirectoryChange:
        listing = _Listing(extensions)
        previous = self._current
        change = DirectoryChange(
            added=tuple(e for i, e in listing.by_id.items() if i not in previous.by_id),
            removed=tuple(e for i, e in previous.by_id.items() if i not in listing.by_id),
            changed=tuple(
                e
                for i, e in listing.by_id.items()
                if i in previous.by_id and previous.by_id[i] != e
            ),
        )
        self._current = listing
        self._cache["listing"] = listing
        self.refreshes += 1
        if share and self._on_listing is not None and (change or self.refreshes == 1):
            try:
                await self._on_listing(extensions)
            except Exception:
                # The listing is ours whatever happens to a copy of it elsewhere.
                log.exception("could not share the extension listing; continuing")
        if change:
            log.info(
                "RingCentral directory: %d users (%d added, %d removed, %d changed)",
                len(listing.by_id),
                len(change.added),
                len(change.removed),
                len(change.changed),
            )
        return change

    def by_id(self, extension_id: str) -> Extension | None:
        return self._current.by_id.get(extension_id)

    def by_email(self, email: str) -> Extension | None:
        return self._current.by_email.get(normalise_email(email))

    def by_number(self, number: str) -> Extension | None:
        return self._current.by_number.get(number.strip())

    def __iter__(self) -> Iterator[Extension]:
        return iter(self._current.by_id.values())

    def __len__(self) -> int:
        return len(self._current.by_id)
