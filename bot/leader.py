"""The leader's lease on PostgreSQL: taken by one replica, renewed, fenced by an epoch, lost safely.

One row holds who leads, under which epoch and until when, on the database's clock (the one
clock every replica shares). A replica takes the lease only once it has expired, and every
takeover bumps the epoch. The leader renews it every third of its life and, by its own
monotonic clock, counts it valid only until a margin before the database could let anyone
else take it: measured from *before* the renewing statement was sent, so a slow answer only
shortens it. A leader paused (SIGSTOP, a long GC, a frozen VM) wakes up knowing it is no
longer sure, and stops before any Slack write or webhook attempt (`check`).

Writes to shared state are fenced in the database as well: a leader's tasks run inside
`fenced(term)`, and the store begins each of their transactions by reading the lease row
FOR KEY SHARE and refusing to go on under another epoch. A takeover first locks that row FOR
UPDATE, which waits for those transactions to end, so every write of a deposed leader is
ordered before its successor's epoch begins, or refused. A renewal's UPDATE changes no key and
so takes a lock those readers do not conflict with: were it to wait for them, a leader whose
transactions overlap without pause (a busy webhook backlog) could never renew and would step
down under load (PostgreSQL lets new share lockers pass a waiting writer).

A context variable carries the term because the same store serves the leader's tasks and
every replica's request handlers (which are not fenced: they act for a person, not as the
leader), and tasks inherit it from the task that led.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.engine import FAILURES
from bot.store.fence import (
    LEASE_NAME,
    LeadershipLost,
    Term,
    current_term,
    ensure_leading,
    fenced,
)

__all__ = [
    "LeadershipLost",
    "Lease",
    "LeaseHolder",
    "Term",
    "current_term",
    "ensure_leading",
    "fenced",
]

log = logging.getLogger(__name__)

ACQUIRE_LOCK_TIMEOUT: Final = "2s"
"""How long taking the lease waits behind a deposed leader's open transaction. Its session is
ended by the server after `idle_in_transaction_session_timeout` if it is paused mid-way."""


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """Who holds the lease now, as the database says (for followers' health)."""

    holder: str | None
    epoch: int
    since: datetime | None
    expires_at: datetime
    expired: bool


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Lease:
    """This replica's side of the leader lease: take it, keep it, give it back, check it."""

    def __init__(
        self,
        engine: AsyncEngine,
        replica_id: str,
        *,
        duration: float,
        poll: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self.replica_id = replica_id
        self.duration = duration
        self.renew_every = duration / 3
        # Clocks drift apart by far less than this over one lease; the rest is for the renewal
        # that is late because the loop was busy.
        self.margin = max(0.5, duration / 5)
        self.poll = poll if poll is not None else min(1.0, duration / 5)
        self._clock = clock
        self._valid_until = 0.0
        self.term: Term | None = None

    # ----------------------------------------------------------------------------- checks

    def valid(self) -> bool:
        """True while this replica leads and is sure no one else can."""
        return self.term is not None and self._clock() < self._valid_until

    def check(self) -> None:
        """Raise LeadershipLost unless `valid()`: called before each Slack write or webhook."""
        if not self.valid():
            raise LeadershipLost("this replica's lease is no longer certain; not writing")

    # ----------------------------------------------------------------------------- database

    async def try_acquire(self) -> Term | None:
        """Take the lease if it has expired (or was given back); a new epoch, or None."""
        started = self._clock()
        try:
            async with self._engine.begin() as conn:
                await conn.execute(text(f"SET LOCAL lock_timeout = '{ACQUIRE_LOCK_TIMEOUT}'"))
                # The one lock that waits for the fenced transactions of the leader before.
                expired = (
                    await conn.execute(
                        text(
                            "SELECT epoch FROM rcstatus_leader_lease "
                            "WHERE name = :name AND expires_at < clock_timestamp() FOR UPDATE"
                        ),
                        {"name": LEASE_NAME},
                    )
                ).one_or_none()
                if expired is None:
                    return None
                row = (
                    await conn.execute(
                        text(
                            "UPDATE rcstatus_leader_lease SET holder = :me, epoch = epoch + 1, "
                            "acquired_at = clock_timestamp(), "
                            "expires_at = clock_timestamp() + make_interval(secs => :seconds) "
                            "WHERE name = :name AND expires_at < clock_timestamp() "
                            "RETURNING epoch, acquired_at"
                        ),
                        {"me": self.replica_id, "seconds": self.duration, "name": LEASE_NAME},
                    )
                ).one_or_none()
        except FAILURES as exc:
            log.debug("could not compete for the lease: %s", type(exc).__name__)
            return None
        if row is None:
            return None
        self.term = Term(epoch=int(row.epoch), since=row.acquired_at, holder=self.replica_id)
        self._valid_until = started + self.duration - self.margin
        return self.term

    async def renew(self) -> bool:
        """Extend the lease; False once another epoch leads (a database error raises)."""
        term = self.term
        if term is None:
            return False
        started = self._clock()
        async with self._engine.begin() as conn:
            renewed = (
                await conn.execute(
                    text(
                        "UPDATE rcstatus_leader_lease "
                        "SET expires_at = clock_timestamp() + make_interval(secs => :seconds) "
                        "WHERE name = :name AND holder = :me AND epoch = :epoch "
                        "RETURNING epoch"
                    ),
                    {
                        "seconds": self.duration,
                        "name": LEASE_NAME,
                        "me": self.replica_id,
                        "epoch": term.epoch,
                    },
                )
            ).one_or_none()
        if renewed is None:
            return False
        self._valid_until = started + self.duration - self.margin
        return True

    async def release(self) -> None:
        """Give the lease back (SIGTERM), so a follower takes over at its next look."""
        term, self.term = self.term, None
        self._valid_until = 0.0
        if term is None:
            return
        with contextlib.suppress(*FAILURES):
            async with asyncio.timeout(2.0):
                async with self._engine.begin() as conn:
                    await conn.execute(
                        text(
                            "UPDATE rcstatus_leader_lease "
                            "SET expires_at = clock_timestamp() - interval '1 second' "
                            "WHERE name = :name AND holder = :me AND epoch = :epoch"
                        ),
                        {"name": LEASE_NAME, "me": self.replica_id, "epoch": term.epoch},
                    )

    async def close(self) -> None:
        """Close the lease's connections (give it back first: `release`)."""
        await self._engine.dispose()

    def forget(self) -> None:
        """Stop counting on the lease without touching the database (it was lost)."""
        self.term = None
        self._valid_until = 0.0

    async def holder(self) -> LeaseHolder | None:
        """Who holds the lease, as the database says now."""
        try:
            async with asyncio.timeout(2.0):
                async with self._engine.connect() as conn:
                    row = (
                        await conn.execute(
                            text(
                                "SELECT holder, epoch, acquired_at, expires_at, "
                                "expires_at < clock_timestamp() AS expired "
                                "FROM rcstatus_leader_lease WHERE name = :name"
                            ),
                            {"name": LEASE_NAME},
                        )
                    ).one_or_none()
        except FAILURES:
            return None
        if row is None:
            return None
        return LeaseHolder(row.holder, int(row.epoch), row.acquired_at, row.expires_at, row.expired)

    # ----------------------------------------------------------------------------- loops

    async def acquire(self) -> Term:
        """Wait until this replica leads."""
        while True:
            term = await self.try_acquire()
            if term is not None:
                return term
            await asyncio.sleep(self.poll)

    async def keep(self) -> str:
        """Renew until the lease is lost; returns why. Never returns while it is held."""
        while True:
            await asyncio.sleep(self.renew_every)
            while True:
                if not self.valid():
                    self.forget()
                    return "the lease could not be renewed in time"
                remaining = self._valid_until - self._clock()
                try:
                    async with asyncio.timeout(max(0.1, min(self.renew_every, remaining))):
                        renewed = await self.renew()
                except (TimeoutError, *FAILURES) as exc:
                    log.warning("could not renew the leader lease (%s); retrying", _why(exc))
                    await asyncio.sleep(min(0.5, max(0.0, self._valid_until - self._clock())))
                    continue
                if not renewed:
                    self.forget()
                    return "another replica took the lease"
                break


def _why(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text_[:120]}" if text_ else type(exc).__name__
