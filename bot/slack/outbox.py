"""Delivers the queued DMs: each until Slack accepts it, refuses it, or its time runs out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from bot.slack.messages import DmOutcome, DmResult
from bot.store import Store
from bot.store.fence import ensure_leading
from bot.store.outbox import PendingDm

log = logging.getLogger(__name__)

DEFAULT_DM_LIFETIME: Final = 86_400.0
"""A queued DM (a link request, a link moved) still matters for a day."""


class DmSender(Protocol):
    async def send(self, user_id: str, text: str, blocks: list[Any] | None = None) -> DmResult: ...


@dataclass(slots=True)
class OutboxStats:
    sent: int = 0
    watches_fired: int = 0
    """Sent DMs that told a watcher their colleague is free."""
    retried: int = 0
    dropped: int = 0


class DmOutbox:
    """Drains the persisted outbox; owned by the supervisor, one per process.

    Each attempt first claims the row in the store (its due time moves to the end of a lease),
    so two replicas never send the same DM at once; a crash mid-send leaves it to be tried again
    when the lease ends. Not now (429, 5xx, the network): tried again after Retry-After or a
    growing, jittered delay, persisted so a restart loses nothing. Never (user not found,
    account inactive, ...): dropped with one log line.
    """

    def __init__(
        self,
        *,
        store: Store,
        team_id: str,
        sender: DmSender,
        lease: float = 120.0,
        backoff_base: float = 2.0,
        backoff_cap: float = 300.0,
        poll: float = 30.0,
        batch: int = 50,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._team_id = team_id
        self._sender = sender
        self._lease = lease
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._poll = poll
        self._batch = batch
        self._clock = clock
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._stopping = False
        # Sent, but the store could not record it yet: never sent again by this process.
        self._unrecorded: set[int] = set()
        self.stats = OutboxStats()

    def kick(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    async def direct_message(
        self,
        user_id: str,
        text: str,
        blocks: list[Any] | None = None,
        *,
        within: float = DEFAULT_DM_LIFETIME,
    ) -> bool:
        """Queue a DM that must survive a 429 or a restart; False only if the outbox is full.
        `within` seconds later an unsent DM is dropped, its news being stale by then."""
        now = self._clock()
        queued = await self._store.enqueue_dm(
            self._team_id,
            user_id,
            text,
            blocks,
            now=datetime.fromtimestamp(now, UTC),
            give_up_at=datetime.fromtimestamp(now + within, UTC),
        )
        if queued:
            self.kick()
        else:
            log.warning("the DM outbox is full; a DM was not queued")
        return queued

    async def stop(self) -> None:
        """Finish the DM in hand, then return from `run`."""
        self._stopping = True
        self._wake.set()

    async def pending(self) -> int:
        return await self._store.pending_dm_count(self._team_id)

    async def run(self) -> None:
        # A replica other than this one may queue DMs too, hence the poll besides the kick.
        while not self._stopping:
            self._wake.clear()
            due = await self._store.due_dms(self._team_id, self._at(self._clock()), self._batch)
            for dm in due:
                if self._stopping:
                    return
                await self._deliver(dm)
            if len(due) == self._batch:
                continue
            wait = self._poll
            next_due = await self._store.next_dm_due(self._team_id)
            if next_due is not None:
                wait = min(wait, next_due.timestamp() - self._clock())
            if wait > 0 and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def _deliver(self, dm: PendingDm) -> None:
        now = self._clock()
        if dm.id in self._unrecorded:
            await self._sent(dm, now)
            return
        if dm.give_up_at.timestamp() <= now:
            log.warning(
                "gave up on a DM to %s after %d attempts (last: %s)",
                dm.user_id,
                dm.attempts,
                dm.last_error,
            )
            await self._store.dm_dropped(dm.id, self._at(now))
            self.stats.dropped += 1
            return
        claimed = await self._store.claim_dm(dm.id, self._at(now), self._at(now + self._lease))
        if claimed is None:
            return  # another sender holds it
        ensure_leading()
        try:
            result = await self._sender.send(claimed.user_id, claimed.text, claimed.blocks)
        except asyncio.CancelledError:
            # Stopped mid-call: due again at once, so a restart does not wait out the lease.
            # Slack may have taken it already; then it is sent twice (rare, and at shutdown).
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store.dm_retry_at(dm.id, self._at(now), "stopped"))
            raise
        if result.outcome is DmOutcome.SENT:
            self._unrecorded.add(dm.id)
            await self._sent(claimed, self._clock())
        elif result.outcome is DmOutcome.REFUSED:
            log.warning("Slack refused a DM to %s for good (%s); dropped", dm.user_id, result.error)
            await self._store.dm_dropped(dm.id, self._at(self._clock()))
            self.stats.dropped += 1
        else:
            delay = result.retry_after
            if delay is None:
                delay = self._backoff(claimed.attempts)
            log.info(
                "a DM to %s was not sent (%s); trying again in %.0fs",
                dm.user_id,
                result.error,
                delay,
            )
            self.stats.retried += 1
            await self._store.dm_retry_at(dm.id, self._at(self._clock() + delay), result.error)

    async def _sent(self, dm: PendingDm, now: float) -> None:
        await self._store.dm_sent(dm.id, self._at(now))
        self._unrecorded.discard(dm.id)
        self.stats.sent += 1
        if dm.watch_id is not None:
            self.stats.watches_fired += 1
            log.info("watch %s fired: DM %s sent to %s", dm.watch_id, dm.id, dm.user_id)
        else:
            log.info("DM %s sent to %s", dm.id, dm.user_id)

    def _backoff(self, attempts: int) -> float:
        """Exponential in the attempts so far, capped, with jitter so replicas spread out."""
        delay = min(self._backoff_cap, self._backoff_base * 2.0 ** max(0, attempts - 1))
        return delay * self._rng.uniform(0.5, 1.0)

    @staticmethod
    def _at(seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)
