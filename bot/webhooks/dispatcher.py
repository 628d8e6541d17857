"""Turns the event log into webhook deliveries and delivers them, in order per person.

Fan-out: the log (bot/store/events.py) already holds every visible change before the hub
moves on. For each enabled endpoint, the changes after its cursor that match its filters become
deliveries, and the cursor moves, in one transaction; a kill -9 at any moment loses nothing,
and the log's pruner never drops what an enabled endpoint has not taken yet.

Delivery: one lane per endpoint, each with a bounded number of attempts in flight, so a slow
or dead receiver only ever holds its own lane. A lane starts with CONCURRENCY slots and gains one
for each quick success, up to MAX_CONCURRENCY; a failure or a slow answer puts it back to
CONCURRENCY. A healthy receiver under load thus takes big batches (one transaction records and
claims each batch, so the database's cost per delivery falls with the batch), while a dead one
never holds more than CONCURRENCY connections. After FAILURES_TO_REST failures in a row the lane
rests for the schedule's first wait and then sends one attempt at a time, each failure
renewing the rest, until one succeeds: every person's oldest change to a dead receiver would
otherwise be tried on its own, hundreds a second, at the cost of the healthy receivers'
deliveries. Deliveries are not touched while a lane rests: each keeps its own schedule and
counts only the attempts really made. Only a person's oldest unfinished delivery to an
endpoint is ever attempted, so each receiver sees each person's changes in order.

While a lane fails like that, fan-out passes its endpoint over: new changes wait in the log
(kept for its cursor, so still never lost) instead of being written as deliveries that could
not be attempted yet, which cost the healthy receivers' rounds a fifth more writes for two dead
receivers beside ten healthy ones. Its first success, or a new URL, fans them out at once, in
order. So its delivery log lists a change only once fan-out has reached it; an endpoint more
than `max_unfinished` changes behind is fanned out to anyway, and that bound disables it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from bot.api.events import AvailabilityEvent
from bot.api.people import rfc3339
from bot.store import Store
from bot.store.events import StoredEvent
from bot.store.fence import ensure_leading
from bot.store.webhooks import (
    AttemptOutcome,
    DeliveryState,
    FanOut,
    NewDelivery,
    Settled,
    WebhookDelivery,
    WebhookEndpoint,
)
from bot.webhooks.retry import RetryPolicy
from bot.webhooks.sender import AttemptResult, WebhookSender, readable_url

log = logging.getLogger(__name__)

CONCURRENCY: Final = 8
"""Attempts in flight for an endpoint that failed or answered slowly lately; with
MAX_ENDPOINTS, the bound on the connections that dead receivers can hold."""
MAX_CONCURRENCY: Final = 64
"""Attempts in flight for an endpoint that answers quickly."""
FAILURES_TO_REST: Final = 5
"""Failures in a row (with no success between) after which a lane rests."""
QUICK: Final = 1.0
"""Seconds within which a 2xx counts as quick, earning its lane another slot."""
STATS_EVERY: Final = 1.0
"""Seconds a latency summary is reused: sorting the samples on every look cost more than
some deliveries."""
MAX_ENDPOINTS: Final = 50
MAX_UNFINISHED: Final = 50_000
"""Deliveries waiting for one endpoint; past it the endpoint is disabled, not the memory of
the database exhausted by a receiver that stopped answering."""
BATCH: Final = 500
KEEP_FINISHED: Final = timedelta(days=3)
"""How long delivered and failed deliveries stay in the delivery log (and can be retried)."""
KEEP_FINISHED_COUNT: Final = 100_000
"""And at most this many of them per endpoint, whatever the rate."""
PRUNE_EVERY: Final = 600.0
POLL: Final = 5.0
"""Seconds between looks without a kick: another replica may have written the log."""
FAN_OUT_GAP: Final = 0.05
"""Seconds at least between fan-out rounds: changes recorded meanwhile share the next round
(and its transaction) instead of each paying for one."""
RECOUNT_EVERY: Final = 5.0
"""Seconds an endpoint's bound on unfinished deliveries is carried from round to round before
the database counts them again (deliveries finishing only lower it)."""
ATTEMPT_MARGIN: Final = 1.0
LINGER: Final = 0.02
"""Seconds a lane waits, once an attempt has finished, for the others in flight to finish too,
so that their outcomes are recorded (and their slots claimed again) in one transaction each
instead of one per attempt: the database, not the receivers, bounds delivery under load."""
LATENCY_SAMPLES: Final = 10_000
ADMINS_TOLD: Final = 10


def message_id(event_id: int) -> str:
    """The `webhook-id` of an event: the same on every attempt, for receivers to de-duplicate."""
    return f"evt_{event_id}"


class Messenger(Protocol):
    async def direct_message(self, user_id: str, text: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class WebhookStats:
    """Counters since start, copied at one moment."""

    delivered: int
    failed_attempts: int
    gave_up: int
    disabled: int
    latency_p50_ms: float | None
    """Transition (the change recorded) to the receiver's 2xx, over recent deliveries."""
    latency_p95_ms: float | None
    latency_p99_ms: float | None


class _Counters:
    def __init__(self) -> None:
        self.delivered = 0
        self.failed_attempts = 0
        self.gave_up = 0
        self.disabled = 0
        self.latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._summary: tuple[float | None, float | None, float | None] = (None, None, None)
        self._summarised_at: float | None = None

    def snapshot(self, now: float) -> WebhookStats:
        if self._summarised_at is None or not 0 <= now - self._summarised_at < STATS_EVERY:
            ordered = sorted(self.latencies)
            self._summary = (
                _percentile(ordered, 50),
                _percentile(ordered, 95),
                _percentile(ordered, 99),
            )
            self._summarised_at = now
        p50, p95, p99 = self._summary
        return WebhookStats(
            delivered=self.delivered,
            failed_attempts=self.failed_attempts,
            gave_up=self.gave_up,
            disabled=self.disabled,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            latency_p99_ms=p99,
        )


def _percentile(ordered: Sequence[float], p: int) -> float | None:
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


def matches(endpoint: WebhookEndpoint, event: StoredEvent) -> bool:
    if endpoint.people is not None and event.user_id not in endpoint.people:
        return False
    return endpoint.availability is None or event.data.get("availability") in endpoint.availability


class _Lane:
    """One endpoint's deliveries: the endpoint as the last fan-out round read it (None once it
    is disabled or deleted), and the task delivering."""

    def __init__(self, endpoint: WebhookEndpoint) -> None:
        self.endpoint: WebhookEndpoint | None = endpoint
        self.known = endpoint
        """The endpoint as last read, even once it is gone (for what is said about it)."""
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.slots = CONCURRENCY
        """Attempts it may have in flight now (see the module's docstring)."""
        self.failures_in_a_row = 0
        self.resting_until = 0.0
        """Monotonic time before which it starts no attempt."""
        self.waiting: set[str] = set()
        """People with deliveries a fan-out round queued since the lane last lined them up."""
        self.lined_up = False
        """Whether it has lined up everyone once: a crash, or the last leader, may have left
        deliveries queued that no one's lane remembers."""
        self.failures = 0
        self.noted_after: int | None = None
        """`failures` when it last wrote a success on the endpoint: one more is worth writing
        only after a failure (see `Store.record_and_claim`)."""

    def answered(self, ok: bool, seconds: float, *, least: int, most: int, rest: float) -> None:
        """One more slot for a quick success, back to the least for a slow one or a failure;
        a rest and a single slot after FAILURES_TO_REST failures in a row."""
        if ok:
            self.failures_in_a_row = 0
            self.slots = min(most, self.slots + 1) if seconds < QUICK else least
            return
        self.failures += 1
        self.failures_in_a_row += 1
        self.slots = least
        if self.failures_in_a_row >= FAILURES_TO_REST:
            self.slots = 1
            self.resting_until = time.monotonic() + rest

    @property
    def failing(self) -> bool:
        """Its receiver failed FAILURES_TO_REST times in a row and has not answered since."""
        return self.failures_in_a_row >= FAILURES_TO_REST

    def rest_left(self) -> float:
        return max(0.0, self.resting_until - time.monotonic())

    def moved(self, least: int) -> None:
        """Its endpoint has a new URL: what the old one did says nothing about it."""
        self.failures_in_a_row = 0
        self.resting_until = 0.0
        self.slots = least


class WebhookDispatcher:
    """Fans the event log out to endpoints and delivers; `run` is owned by the supervisor."""

    def __init__(
        self,
        *,
        store: Store,
        team_id: str,
        sender: WebhookSender,
        retry: RetryPolicy,
        messenger: Messenger,
        admins: Callable[[], Sequence[str]],
        concurrency: int = CONCURRENCY,
        max_concurrency: int = MAX_CONCURRENCY,
        max_unfinished: int = MAX_UNFINISHED,
        poll: float = POLL,
        linger: float = LINGER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._team_id = team_id
        self._sender = sender
        self._retry = retry
        self._messenger = messenger
        self._admins = admins
        self._concurrency = concurrency
        self._max_concurrency = max(concurrency, max_concurrency)
        self._max_unfinished = max_unfinished
        self._poll = poll
        self._linger = linger
        self._clock = clock
        self._wake = asyncio.Event()
        self._none_until = 0.0
        """No endpoint is enabled: until then, a change costs no read (see `endpoints_changed`)."""
        self._endpoint_changes = 0
        self._lanes: dict[str, _Lane] = {}
        self._at_most: dict[str, int] = {}
        self._recount_at = 0.0
        self._stopping = False
        self._counters = _Counters()

    # ----------------------------------------------------------------------------- surface

    def kick(self) -> None:
        """A change was recorded: look now rather than at the next poll."""
        self._wake.set()

    def endpoints_changed(self) -> None:
        """An endpoint was added, changed or removed here: read them again, now."""
        self._none_until = 0.0
        self._endpoint_changes += 1
        self._wake.set()

    def stats(self) -> WebhookStats:
        return self._counters.snapshot(time.monotonic())

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def ping(self, endpoint: WebhookEndpoint) -> tuple[str, AttemptResult]:
        """Send one `webhook.ping` now (not retried); its id and what the receiver said."""
        body = {
            "type": "webhook.ping",
            "timestamp": rfc3339(datetime.fromtimestamp(self._clock(), UTC)),
            "data": {"webhook_id": endpoint.id},
        }
        ping_id = "ping_" + secrets.token_hex(8)
        result = await self._sender.send(endpoint.url, endpoint.secret, ping_id, _compact(body))
        return ping_id, result

    # ----------------------------------------------------------------------------- loop

    async def run(self) -> None:
        next_prune = self._clock()
        try:
            while not self._stopping:
                self._wake.clear()
                started = time.monotonic()
                more = await self._fan_out()
                if self._clock() >= next_prune:
                    await self._prune()
                    next_prune = self._clock() + PRUNE_EVERY
                if more:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
                gap = started + FAN_OUT_GAP - time.monotonic()
                if gap > 0 and not self._stopping:
                    await asyncio.sleep(gap)
        finally:
            lanes, self._lanes = list(self._lanes.values()), {}
            tasks = [lane.task for lane in lanes if lane.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._sender.close()

    async def _fan_out(self) -> bool:
        """One round over every enabled endpoint; True if the log has more to read at once."""
        if self._clock() < self._none_until:
            return False
        changes = self._endpoint_changes
        if time.monotonic() >= self._recount_at:
            self._at_most = {}
            self._recount_at = time.monotonic() + RECOUNT_EVERY
        round_ = await self._store.fan_out_round(
            self._team_id,
            limit=BATCH,
            deliveries=_Payloads().deliveries,
            max_unfinished=self._max_unfinished,
            at_most=self._at_most,
            resting=[endpoint_id for endpoint_id, lane in self._lanes.items() if lane.failing],
        )
        self._at_most.update(round_.at_most)
        endpoints = round_.endpoints
        if not endpoints and changes == self._endpoint_changes:
            # Most workspaces have none: read again at the next poll (another replica may have
            # added one) or when this one's API says so, not at every recorded change.
            self._none_until = self._clock() + self._poll
        enabled = {e.id for e in endpoints}
        for endpoint_id, lane in list(self._lanes.items()):
            if endpoint_id not in enabled:
                lane.endpoint = None
                lane.wake.set()
        for endpoint in endpoints:
            lane = self._lane(endpoint)
            if endpoint.url != lane.known.url:
                lane.moved(self._concurrency)
                lane.wake.set()
                self._wake.set()  # the round just read passed it over if it was resting
            lane.endpoint = lane.known = endpoint
        for endpoint in endpoints:
            outcome = round_.outcomes.get(endpoint.id)
            if outcome is FanOut.DISABLED:
                self._counters.disabled += 1
                self._lane(endpoint).endpoint = None
                log.warning(
                    "webhook %s disabled: more than %d deliveries waiting for %s",
                    endpoint.id,
                    self._max_unfinished,
                    readable_url(endpoint.url),
                )
                await self._tell_admins(
                    endpoint, f"more than {self._max_unfinished:,} deliveries were waiting for it"
                )
            elif outcome is FanOut.ADVANCED:
                lane = self._lane(endpoint)
                lane.waiting.update(round_.queued_for.get(endpoint.id, ()))
                lane.wake.set()
        return round_.full

    def _lane(self, endpoint: WebhookEndpoint) -> _Lane:
        lane = self._lanes.get(endpoint.id)
        if lane is not None and lane.task is not None and lane.task.done():
            if not lane.task.cancelled() and lane.task.exception() is not None:
                # Its attempts stay booked, so they are made again when their booking ends.
                log.warning("webhook %s: delivery stopped: %s", endpoint.id, lane.task.exception())
            lane = None
        if lane is None or lane.task is None:
            lane = _Lane(endpoint)
            lane.slots = self._concurrency
            lane.task = asyncio.create_task(self._deliver(lane), name=f"webhook {endpoint.id}")
            self._lanes[endpoint.id] = lane
        return lane

    async def _prune(self) -> None:
        before = datetime.fromtimestamp(self._clock(), UTC) - KEEP_FINISHED
        removed = await self._store.prune_webhook_deliveries(
            before, keep_per_endpoint=KEEP_FINISHED_COUNT
        )
        if removed:
            log.debug("pruned %d finished webhook deliveries", removed)

    # ----------------------------------------------------------------------------- lanes

    async def _deliver(self, lane: _Lane) -> None:
        """One endpoint's lane: takes due deliveries, at most `concurrency` attempts at once,
        and records what they got in batches, until the endpoint is disabled or deleted."""
        inflight: dict[asyncio.Task[AttemptOutcome], WebhookDelivery] = {}
        outcomes: list[AttemptOutcome] = []
        endpoint_id = lane.known.id
        try:
            while not self._stopping:
                lane.wake.clear()
                endpoint = lane.endpoint
                resting = lane.rest_left()
                free = lane.slots - len(inflight) if endpoint is not None and not resting else 0
                wait: float | None = None
                lining_up = endpoint is not None and (lane.waiting or not lane.lined_up)
                if outcomes or free > 0 or lining_up:
                    # What finished is recorded and the freed slots claimed again in one
                    # transaction.
                    settled = await self._settle(lane, outcomes, free, inflight.values())
                    outcomes = []
                    endpoint = lane.endpoint
                    if endpoint is not None:
                        for delivery in settled.claimed:
                            task = asyncio.create_task(self._attempt(lane, endpoint, delivery))
                            inflight[task] = delivery
                    if free > 0 and len(inflight) < lane.slots:
                        wait = self._poll
                        if settled.next_due is not None:
                            due_in = settled.next_due.timestamp() - self._clock()
                            wait = min(wait, max(0.0, due_in))
                if endpoint is None:
                    break
                if resting and not inflight:
                    wait = resting if wait is None else min(wait, resting)
                if wait == 0.0:
                    continue
                waker: asyncio.Task[Any] = asyncio.create_task(lane.wake.wait())
                try:
                    done, _ = await asyncio.wait(
                        {*inflight, waker}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    waker.cancel()
                finished = [task for task in done if task in inflight]
                if finished and len(finished) < len(inflight):
                    more, _ = await asyncio.wait(inflight, timeout=self._linger)
                    finished += [task for task in more if task not in finished]
                for task in finished:
                    del inflight[task]
                    outcomes.append(task.result())
            while inflight:
                done, _ = await asyncio.wait(inflight)
                for task in done:
                    del inflight[task]
                    outcomes.append(task.result())
        finally:
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)
            # Attempts cut short by a stop are due again at once, rather than at their booking.
            stopped = _at(self._clock())
            outcomes += [
                AttemptOutcome(d, DeliveryState.PENDING, None, "stopped", stopped)
                for task, d in inflight.items()
                if task.cancelled()
            ]
            if outcomes:
                with contextlib.suppress(Exception):
                    await asyncio.shield(
                        self._store.record_attempts(endpoint_id, outcomes, stopped)
                    )

    async def _settle(
        self,
        lane: _Lane,
        outcomes: list[AttemptOutcome],
        free: int,
        inflight: Collection[WebhookDelivery],
    ) -> Settled:
        """Record what the attempts got (disabling the endpoint if they say so) and claim up to
        `free` more, unless the endpoint is now off."""
        endpoint = lane.known
        now = self._clock()
        gone = any(o.status == 410 for o in outcomes)
        # Taken before the transaction begins: whoever a round added after its commit is there.
        waiting = set(lane.waiting)
        failures = lane.failures
        noting = lane.noted_after != failures
        settled = await self._store.record_and_claim(
            endpoint.id,
            outcomes,
            _at(now),
            gone="the receiver answered 410 Gone" if gone else None,
            limit=free,
            booked_until=_at(now + self._sender.timeout + ATTEMPT_MARGIN),
            excluding=[d.id for d in inflight],
            waiting=waiting if lane.lined_up else None,
            note_success=noting,
        )
        lane.lined_up = True
        lane.waiting -= waiting
        if noting and any(o.state is DeliveryState.DELIVERED for o in outcomes):
            lane.noted_after = failures
        for outcome in outcomes:
            if outcome.state is DeliveryState.FAILED:
                self._counters.gave_up += 1
                log.warning(
                    "webhook %s: gave up event %d after %d attempts (last: %s)",
                    endpoint.id,
                    outcome.delivery.event_id,
                    outcome.delivery.attempts,
                    outcome.error,
                )
        if settled.spent:
            lane.endpoint = None
            self._counters.disabled += 1
            log.warning(
                "webhook %s disabled: %s failed for a whole retry schedule",
                endpoint.id,
                readable_url(endpoint.url),
            )
            await self._tell_admins(endpoint, "every attempt failed for a whole retry schedule")
        elif gone:
            lane.endpoint = None
            if settled.gone:
                self._counters.disabled += 1
                log.warning(
                    "webhook %s disabled: %s answered 410 Gone",
                    endpoint.id,
                    readable_url(endpoint.url),
                )
        return settled

    async def _attempt(
        self, lane: _Lane, endpoint: WebhookEndpoint, delivery: WebhookDelivery
    ) -> AttemptOutcome:
        """One attempt of a claimed delivery (its `attempts` already counts this one)."""
        ensure_leading()
        started = time.monotonic()
        result = await self._sender.send(
            endpoint.url, endpoint.secret, message_id(delivery.event_id), delivery.payload
        )
        if result.ok and lane.failing:
            # The changes its rest passed over wait in the log: fan them out now.
            self._wake.set()
        lane.answered(
            result.ok,
            time.monotonic() - started,
            least=self._concurrency,
            most=self._max_concurrency,
            rest=self._retry.first_wait,
        )
        done = self._clock()
        # One line per attempt, so an operator (and the replica tests) can tell which process
        # sent what and when; the URL is left out (its path or query may be a credential).
        log.info(
            "webhook %s: event %d attempt %d: %s",
            endpoint.id,
            delivery.event_id,
            delivery.attempts,
            f"delivered ({result.status})" if result.ok else result.error,
        )
        if result.ok:
            self._counters.delivered += 1
            self._counters.latencies.append((done - delivery.event_at.timestamp()) * 1000.0)
            return AttemptOutcome(delivery, DeliveryState.DELIVERED, result.status, None)
        self._counters.failed_attempts += 1
        if result.status == 410:
            # Kept waiting: enabling the endpoint again sends it.
            return AttemptOutcome(
                delivery, DeliveryState.PENDING, result.status, result.error, _at(done)
            )
        delay = self._retry.delay_after(delivery.attempts, result.retry_after)
        if delay is None:
            return AttemptOutcome(delivery, DeliveryState.FAILED, result.status, result.error)
        return AttemptOutcome(
            delivery, DeliveryState.PENDING, result.status, result.error, _at(done + delay)
        )

    async def _tell_admins(self, endpoint: WebhookEndpoint, why: str) -> None:
        about = f" ({endpoint.description})" if endpoint.description else ""
        text = (
            f":warning: rcstatus turned off webhook `{endpoint.id}`{about} to "
            f"{readable_url(endpoint.url)}: {why}. Once the receiver answers again, turn it "
            f'back on with `PATCH /api/v1/webhooks/{endpoint.id}` and `{{"enabled": true}}`.'
        )
        for admin in list(self._admins())[:ADMINS_TOLD]:
            await self._messenger.direct_message(admin, text)


class _Payloads:
    """One fan-out round's bodies: each event's is encoded once, not once per endpoint."""

    def __init__(self) -> None:
        self._bodies: dict[int, str] = {}

    def deliveries(
        self, endpoint: WebhookEndpoint, events: Sequence[StoredEvent]
    ) -> list[NewDelivery]:
        """The deliveries `events` make for `endpoint`: those its filters let through."""
        return [
            NewDelivery(e.id, e.user_id, e.at, self._body(e))
            for e in events
            if matches(endpoint, e)
        ]

    def _body(self, event: StoredEvent) -> str:
        body = self._bodies.get(event.id)
        if body is None:
            body = self._bodies[event.id] = _compact(AvailabilityEvent.stored(event).envelope())
        return body


def _compact(body: object) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
