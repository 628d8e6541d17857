"""The leader's side of the replicas' view: merged presence, links and events, put on the bus."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from bot.presence import Presence
from bot.store.presence import PRESENCE_FIELDS, PRESENCE_TIMES, presence_from_row, presence_row

PRESENCE_TOPIC: Final = "presence"
"""One extension's merged presence, as `presence_wire` makes it."""
REMOVED_TOPIC: Final = "presence.removed"
"""A list of extension ids that no longer exist."""
LINKS_TOPIC: Final = "links"
"""The links changed in the store: read them again."""
EVENTS_TOPIC: Final = "events"
"""Availability events are recorded up to this id."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_REQUIRED_TIMES: Final = frozenset({"availability_since", "updated_at"})
_KINDS: Final = {
    "extension_id": (str,),
    "allow_see_my_presence": (bool, type(None)),
    "active_calls": (int, type(None)),
}


class Publisher(Protocol):
    def publish(self, topic: str, message: Any) -> None: ...


def presence_wire(presence: Presence) -> list[Any]:
    """A presence as a JSON array: the store's row values by position, times in microseconds.

    Positions rather than names, and integers rather than ISO text, make a presence ~150 bytes:
    about fifty fit in one NOTIFY.
    """
    row = presence_row(presence)
    return [
        (row[name] - _EPOCH) // _MICROSECOND if isinstance(row[name], datetime) else row[name]
        for name in PRESENCE_FIELDS
    ]


def presence_from_wire(values: object) -> Presence:
    """The inverse of `presence_wire`; ValueError naming the field (never its value)."""
    if not isinstance(values, list) or len(values) != len(PRESENCE_FIELDS):
        raise ValueError("a presence is an array of every field")
    row: dict[str, Any] = {}
    for name, value in zip(PRESENCE_FIELDS, values, strict=True):
        if name in PRESENCE_TIMES:
            if value is None and name not in _REQUIRED_TIMES:
                row[name] = None
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} is not a time in microseconds")
            try:
                row[name] = _EPOCH + value * _MICROSECOND
            except OverflowError:
                raise ValueError(f"{name} is out of range") from None
            continue
        kinds = _KINDS.get(name, (str, type(None)))
        if not isinstance(value, kinds) or (int in kinds and isinstance(value, bool)):
            raise ValueError(f"{name} has the wrong type")
        row[name] = value
    try:
        return presence_from_row(row)
    except ValueError:
        raise ValueError("a status is not one this version knows") from None


class LeaderMirror:
    """A peer beside the coordinator (its `mirror`), and the event feed's `recorded` hook.

    It puts on the bus what followers need to keep their own view: each extension's merged
    presence when it changes, removed extensions, a notice that links changed (followers read
    them from the store: links are few and change rarely), and how far availability events are
    recorded (followers read them from the store by id). A presence that differs from the one
    before only in `updated_at` is not sent: a periodic snapshot repeats most of the company.
    """

    def __init__(self, bus: Publisher) -> None:
        self._bus = bus

    def presence_changed(self, presence: Presence, previous: Presence | None) -> None:
        if previous is not None and previous == dataclasses.replace(
            presence, updated_at=previous.updated_at
        ):
            return
        self._bus.publish(PRESENCE_TOPIC, presence_wire(presence))

    def extensions_removed(self, extension_ids: Sequence[str]) -> None:
        ids = list(extension_ids)
        # Bounded per message by the payload limit: an id is ~12 bytes, so 400 a message.
        for first in range(0, len(ids), 400):
            self._bus.publish(REMOVED_TOPIC, ids[first : first + 400])

    def links_changed(self) -> None:
        self._bus.publish(LINKS_TOPIC, None)

    def events_recorded(self, last_id: int) -> None:
        self._bus.publish(EVENTS_TOPIC, last_id)
