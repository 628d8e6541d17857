"""Webhook endpoints and their deliveries: fanned out from the event log, claimed, finished."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import (
    Integer,
    Row,
    Select,
    Update,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from bot.store import schema
from bot.store.base import StoreBase, chunks
from bot.store.events import StoredEvent, read_events_after, read_latest_event_id


class DeliveryState(StrEnum):
    QUEUED = "queued"
    """Waiting behind an older unfinished delivery of the same person to the same endpoint,
    or for its lane to put it in line (see `line_up`)."""
    PENDING = "pending"
    """The person's oldest unfinished delivery: attempted at `next_attempt_at`."""
    DELIVERED = "delivered"
    FAILED = "failed"
    """Every attempt of the schedule failed; `retry` puts it back in line."""


UNFINISHED = (DeliveryState.QUEUED.value, DeliveryState.PENDING.value)


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    team_id: str
    url: str
    secret: str
    people: tuple[str, ...] | None
    """Slack user ids whose changes it gets; None for everyone."""
    availability: tuple[str, ...] | None
    """The availabilities a change must reach to be sent; None for every change."""
    description: str
    enabled: bool
    disabled_reason: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    event_cursor: int
    last_success_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    event_id: int
    user_id: str
    event_at: datetime
    payload: str


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    id: int
    endpoint_id: str
    event_id: int
    user_id: str
    event_at: datetime
    payload: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    first_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one attempt of a claimed delivery got: DELIVERED, PENDING (tried again at
    `retry_at`) or FAILED (the schedule is spent)."""

    delivery: WebhookDelivery
    state: DeliveryState
    status: int | None
    error: str | None
    retry_at: datetime | None = None


INSERT_ROWS: Final = 5000
"""Deliveries inserted per statement (a round fans out at most a batch of events to each
endpoint)."""


class FanOut(StrEnum):
    ADVANCED = "advanced"
    """The deliveries are in and the cursor moved, in one transaction."""
    MOVED = "moved"
    """Someone else moved the cursor (or the endpoint went away): nothing was written."""
    DISABLED = "disabled"
    """The endpoint's backlog would pass its bound: it was disabled instead."""


@dataclass(frozen=True, slots=True)
class Settled:
    """What `record_and_claim` did."""

    spent: bool
    """It disabled the endpoint: a delivery failed for a whole schedule with no success since."""
    gone: bool
    """It disabled the endpoint for the reason given (a receiver's 410)."""
    claimed: list[WebhookDelivery]
    next_due: datetime | None


@dataclass(frozen=True, slots=True)
class FanOutRound:
    endpoints: list[WebhookEndpoint]
    """The team's enabled endpoints, as the round read them."""
    outcomes: dict[str, FanOut]
    """For each endpoint that got deliveries: ADVANCED (they are queued) or DISABLED."""
    full: bool
    """The events read filled the limit: there are probably more to read at once."""
    at_most: dict[str, int] = field(default_factory=dict)
    """For each endpoint that got deliveries, a bound on its unfinished ones now."""
    queued_for: dict[str, frozenset[str]] = field(default_factory=dict)
    """For each ADVANCED endpoint, the people whose new deliveries its lane must line up."""


_CHANGEABLE = frozenset({"url", "people", "availability", "description"})


class WebhookRepository(StoreBase):
    """Endpoints (with the cursor into the event log) and deliveries, ordered per person."""

    # ----------------------------------------------------------------------------- endpoints

    async def add_webhook(
        self,
        *,
        endpoint_id: str,
        team_id: str,
        url: str,
        secret: str,
        people: Sequence[str] | None,
        availability: Sequence[str] | None,
        description: str,
        created_by: str,
        max_endpoints: int,
    ) -> WebhookEndpoint | None:
        """The new endpoint, starting after the newest event; None if the team has the most."""
        hooks, events = schema.webhooks, schema.api_events
        now = self._clock()
        async with self._transaction("adding a webhook") as conn:
            count = await conn.scalar(
                select(func.count()).select_from(hooks).where(hooks.c.team_id == team_id)
            )
            if (count or 0) >= max_endpoints:
                return None
            latest = await conn.scalar(
                select(func.max(events.c.id)).where(events.c.team_id == team_id)
            )
            await conn.execute(
                insert(hooks).values(
                    id=endpoint_id,
                    team_id=team_id,
                    url=url,
                    secret=secret,
                    people=_people_column(people),
                    availability=_list_column(availability),
                    description=description,
                    enabled=True,
                    created_by=created_by,
                    created_at=now,
                    updated_at=now,
                    event_cursor=int(latest or 0),
                )
            )
            return await _endpoint(conn, team_id, endpoint_id)

    async def webhooks(self, team_id: str) -> list[WebhookEndpoint]:
        hooks = schema.webhooks
        async with self._transaction("listing webhooks") as conn:
            rows = await conn.execute(
                select(hooks)
                .where(hooks.c.team_id == team_id)
                .order_by(hooks.c.created_at, hooks.c.id)
            )
            return [_endpoint_record(row) for row in rows]

    async def webhook(self, team_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        async with self._transaction("reading a webhook") as conn:
            return await _endpoint(conn, team_id, endpoint_id)

    async def update_webhook(
        self, team_id: str, endpoint_id: str, *, enabled: bool | None = None, **changes: Any
    ) -> WebhookEndpoint | None:
        """Change what is given (url, people, availability, description, enabled); None if
        there is no such endpoint. Enabling a disabled one starts it afresh: it takes changes
        from now on, and its waiting deliveries get a whole schedule again, starting now."""
        unknown = set(changes) - _CHANGEABLE
        if unknown:
            raise TypeError(f"cannot change {sorted(unknown)}")
        hooks, deliveries, events = schema.webhooks, schema.webhook_deliveries, schema.api_events
        now = self._clock()
        values: dict[str, Any] = {"updated_at": now}
        for name, value in changes.items():
            if name == "people":
                values[name] = _people_column(value)
            elif name == "availability":
                values[name] = _list_column(value)
            else:
                values[name] = value
        async with self._transaction("changing a webhook") as conn:
            current = await _endpoint(conn, team_id, endpoint_id)
            if current is None:
                return None
            if enabled is False and current.enabled:
                values.update(enabled=False, disabled_reason="disabled through the API")
            elif enabled is True and not current.enabled:
                latest = await conn.scalar(
                    select(func.max(events.c.id)).where(events.c.team_id == team_id)
                )
                values.update(
                    enabled=True,
                    disabled_reason=None,
                    last_success_at=None,
                    event_cursor=max(current.event_cursor, int(latest or 0)),
                )
                await conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.endpoint_id == endpoint_id,
                        deliveries.c.state == DeliveryState.PENDING.value,
                    )
                    .values(attempts=0, next_attempt_at=now, first_attempt_at=None)
                )
            await conn.execute(update(hooks).where(hooks.c.id == endpoint_id).values(**values))
            return await _endpoint(conn, team_id, endpoint_id)

    async def delete_webhook(self, team_id: str, endpoint_id: str) -> bool:
        hooks, deliveries = schema.webhooks, schema.webhook_deliveries
        async with self._transaction("deleting a webhook") as conn:
            gone = await conn.execute(
                delete(hooks).where(hooks.c.team_id == team_id, hooks.c.id == endpoint_id)
            )
            if not gone.rowcount:
                return False
            await conn.execute(delete(deliveries).where(deliveries.c.endpoint_id == endpoint_id))
            return True

    async def disable_webhook(self, endpoint_id: str, reason: str) -> bool:
        """Disable it; True only for the call that turned an enabled endpoint off."""
        async with self._transaction("disabling a webhook") as conn:
            return await _disable(conn, endpoint_id, reason, self._clock())

    async def enabled_webhooks(self, team_id: str) -> list[WebhookEndpoint]:
        hooks = schema.webhooks
        async with self._transaction("listing enabled webhooks") as conn:
            rows = await conn.execute(
                select(hooks)
                .where(hooks.c.team_id == team_id, hooks.c.enabled.is_(True))
                .order_by(hooks.c.id)
            )
            return [_endpoint_record(row) for row in rows]

    # ----------------------------------------------------------------------------- fan-out

    async def fan_out(
        self,
        endpoint_id: str,
        *,
        after: int,
        through: int,
        deliveries: Sequence[NewDelivery],
        max_unfinished: int,
    ) -> FanOut:
        """Queue `deliveries` (events after `after`, up to `through`) and move the endpoint's
        cursor to `through`, in one transaction, only if the cursor is still at `after`.

        They are all `queued`: the endpoint's lane puts them in line (`line_up`). An endpoint
        whose unfinished deliveries would pass `max_unfinished` is disabled rather than grow
        without bound."""
        hooks = schema.webhooks
        if through <= after:
            # Read when the cursor had already passed these events: another fan-out took them.
            return FanOut.MOVED
        async with self._transaction("queueing webhook deliveries") as conn:
            moved = await conn.execute(
                update(hooks)
                .where(
                    hooks.c.id == endpoint_id,
                    hooks.c.enabled.is_(True),
                    hooks.c.event_cursor == after,
                )
                .values(event_cursor=through)
            )
            if not moved.rowcount:
                return FanOut.MOVED
            outcomes, _ = await _queue(
                conn, {endpoint_id: deliveries}, max_unfinished, self._clock(), {}
            )
            return outcomes.get(endpoint_id, FanOut.ADVANCED)

    async def fan_out_round(
        self,
        team_id: str,
        *,
        limit: int,
        deliveries: Callable[[WebhookEndpoint, Sequence[StoredEvent]], list[NewDelivery]],
        max_unfinished: int,
        at_most: Mapping[str, int] | None = None,
        resting: Collection[str] = (),
    ) -> FanOutRound:
        """One fan-out round over every enabled endpoint of the team, in one transaction: read
        the endpoints and up to `limit` events after the lowest cursor, queue for each endpoint
        `deliveries(endpoint, its events)` as `fan_out` would, and move each cursor past the
        events read. The endpoints' rows stay locked until the end, so nobody moves a cursor
        in between. A round never decides who is next in a person's line: that is the lane's
        alone (`line_up`), so a round and a lane finishing a delivery need no lock in common.

        `at_most` bounds some endpoints' unfinished deliveries (from an earlier round's
        `at_most`): those still clear of `max_unfinished` with this round's are not counted
        again. Counting a dead receiver's backlog on every round cost the database more than
        queueing the round.

        The endpoints in `resting` (their receiver keeps failing) are passed over while they
        are no more than `max_unfinished` changes behind: their changes wait in the log, which
        keeps them for their cursor, rather than become deliveries that could not be attempted
        yet and cost every healthy receiver's round the writing of them. Past that they are
        fanned out to as the others, so that the bound disables them."""
        hooks = schema.webhooks
        async with self._transaction("queueing webhook deliveries") as conn:
            rows = await conn.execute(
                select(hooks)
                .where(hooks.c.team_id == team_id, hooks.c.enabled.is_(True))
                .order_by(hooks.c.id)
                # Not FOR UPDATE: it needs to keep out only the cursor's other movers.
                .with_for_update(key_share=True)
            )
            endpoints = [_endpoint_record(row) for row in rows]
            taking = endpoints
            if resting and any(e.id in resting for e in endpoints):
                head = await read_latest_event_id(conn, team_id)
                taking = [
                    e
                    for e in endpoints
                    if e.id not in resting or e.event_cursor < head - max_unfinished
                ]
            if not taking:
                return FanOutRound(endpoints, {}, full=False)
            start = min(e.event_cursor for e in taking)
            events = await read_events_after(conn, team_id, start, limit)
            planned: dict[str, Sequence[NewDelivery]] = {}
            cursors: list[dict[str, Any]] = []
            for endpoint in taking:
                mine = [e for e in events if e.id > endpoint.event_cursor]
                if mine:
                    planned[endpoint.id] = deliveries(endpoint, mine)
                    cursors.append({"hook_id": endpoint.id, "through": mine[-1].id})
            if cursors:
                await conn.execute(
                    update(hooks)
                    .where(hooks.c.id == bindparam("hook_id"))
                    .values(event_cursor=bindparam("through")),
                    cursors,
                )
            outcomes, bounds = await _queue(
                conn, planned, max_unfinished, self._clock(), at_most or {}
            )
            queued_for = {
                endpoint_id: frozenset(d.user_id for d in planned[endpoint_id])
                for endpoint_id, outcome in outcomes.items()
                if outcome is FanOut.ADVANCED
            }
            return FanOutRound(
                endpoints,
                outcomes,
                full=len(events) == limit,
                at_most=bounds,
                queued_for=queued_for,
            )

    # ----------------------------------------------------------------------------- delivery

    async def due_deliveries(
        self, endpoint_id: str, now: datetime, limit: int
    ) -> list[WebhookDelivery]:
        """Pending deliveries due by `now`, the longest waiting first (at most one per person)."""
        async with self._transaction("reading due webhook deliveries") as conn:
            rows = await conn.execute(_due(endpoint_id, now, limit, ()))
            return [_delivery(row) for row in rows]

    async def claim_deliveries(
        self,
        endpoint_id: str,
        now: datetime,
        limit: int,
        *,
        booked_until: datetime,
        excluding: Collection[int] = (),
    ) -> tuple[list[WebhookDelivery], datetime | None]:
        """Take up to `limit` due deliveries for an attempt each, and say when the next of the
        rest is due (None as well when `limit` were taken: the caller has no room to wait for
        it). Each taken one has the attempt counted and is booked until `booked_until` (beyond
        the attempt's timeout) before it is made: nobody else takes it meanwhile, and after a
        crash mid-attempt it is simply due again then."""
        async with self._transaction("claiming webhook deliveries") as conn:
            return await _claim(conn, endpoint_id, now, limit, booked_until, excluding)

    async def line_up(self, endpoint_id: str, people: Collection[str] | None = None) -> int:
        """Make the oldest queued delivery of each of `people` (everyone's if None) with none
        pending their pending one, due now; how many it made. Only the endpoint's lane calls
        it, as part of `record_and_claim`, so two never race to choose a person's next."""
        async with self._transaction("lining up webhook deliveries") as conn:
            return await _line_up(conn, endpoint_id, people, self._clock())

    async def record_attempts(
        self, endpoint_id: str, outcomes: Sequence[AttemptOutcome], now: datetime
    ) -> bool:
        """What attempts got, in one transaction: delivered ones finish and their person's next
        delivery is due at once; retried ones are due at their time; failed ones (the schedule
        spent) finish too. If a failed one's endpoint has not accepted anything since that
        delivery's first attempt, the endpoint has been failing for a whole schedule and is
        disabled: True for the call that did that."""
        settled = await self.record_and_claim(
            endpoint_id, outcomes, now, booked_until=now, note_success=True
        )
        return settled.spent

    async def record_and_claim(
        self,
        endpoint_id: str,
        outcomes: Sequence[AttemptOutcome],
        now: datetime,
        *,
        gone: str | None = None,
        limit: int = 0,
        booked_until: datetime,
        excluding: Collection[int] = (),
        waiting: Collection[str] | None = (),
        note_success: bool = False,
    ) -> Settled:
        """In one transaction, so that a busy lane pays one round of the database per batch of
        attempts: record what `outcomes` got (as `record_attempts`); disable the endpoint for
        `gone` if given; line up (`line_up`) the people whose delivery finished here and those
        in `waiting` (everyone if None); then, unless the endpoint is now off, claim up to
        `limit` due deliveries (`claim_deliveries`).

        `note_success` writes the time of a delivered outcome on the endpoint, which only
        decides whether a failed schedule disables it: the lane writes it when that decision
        could change, not on every batch, since that write waits for a fan-out round's lock
        on the endpoint's row."""
        delivered = any(o.state is DeliveryState.DELIVERED for o in outcomes)
        failed = any(o.state is DeliveryState.FAILED for o in outcomes)
        async with self._transaction("recording and claiming webhook deliveries") as conn:
            succeeded_at = now if note_success and delivered else None
            if succeeded_at is not None or failed or gone is not None:
                await _lock_endpoint(conn, endpoint_id, succeeded_at)
            spent, finished = await _record(conn, endpoint_id, outcomes, now)
            # Even for an endpoint turned off: its lines are then right when it is enabled.
            people = None if waiting is None else sorted({*waiting, *finished})
            if people is None or people:
                await _line_up(conn, endpoint_id, people, now)
            if spent:
                return Settled(spent=True, gone=False, claimed=[], next_due=None)
            if gone is not None:
                off = await _disable(conn, endpoint_id, gone, now)
                return Settled(spent=False, gone=off, claimed=[], next_due=None)
            if limit <= 0:
                return Settled(spent=False, gone=False, claimed=[], next_due=None)
            claimed, next_due = await _claim(conn, endpoint_id, now, limit, booked_until, excluding)
            return Settled(spent=False, gone=False, claimed=claimed, next_due=next_due)

    async def webhook_deliveries(
        self, endpoint_id: str, *, before_id: int | None, limit: int
    ) -> list[WebhookDelivery]:
        """The endpoint's deliveries, newest first, older than `before_id` when given."""
        table = schema.webhook_deliveries
        query = select(table).where(table.c.endpoint_id == endpoint_id)
        if before_id is not None:
            query = query.where(table.c.id < before_id)
        async with self._transaction("listing webhook deliveries") as conn:
            rows = await conn.execute(query.order_by(table.c.id.desc()).limit(limit))
            return [_delivery(row) for row in rows]

    async def webhook_delivery(self, endpoint_id: str, event_id: int) -> WebhookDelivery | None:
        table = schema.webhook_deliveries
        async with self._transaction("reading a webhook delivery") as conn:
            row = (
                await conn.execute(
                    select(table).where(
                        table.c.endpoint_id == endpoint_id, table.c.event_id == event_id
                    )
                )
            ).first()
            return _delivery(row) if row is not None else None

    async def retry_delivery(
        self, endpoint_id: str, event_id: int, now: datetime
    ) -> WebhookDelivery | None:
        """Send a delivery again with a fresh schedule: at once if its person has nothing else
        waiting, else right after their current one. Unfinished ones just become due now."""
        table = schema.webhook_deliveries
        async with self._transaction("retrying a webhook delivery") as conn:
            row = (
                await conn.execute(
                    select(table).where(
                        table.c.endpoint_id == endpoint_id, table.c.event_id == event_id
                    )
                )
            ).first()
            if row is None:
                return None
            delivery = _delivery(row)
            fresh: dict[str, Any] = {"attempts": 0, "first_attempt_at": None, "finished_at": None}
            if delivery.state is DeliveryState.PENDING:
                fresh["next_attempt_at"] = now
            elif delivery.state is DeliveryState.QUEUED:
                fresh = {"attempts": 0, "first_attempt_at": None}
            else:
                head = await conn.scalar(
                    select(func.count())
                    .select_from(table)
                    .where(
                        table.c.endpoint_id == endpoint_id,
                        table.c.user_id == delivery.user_id,
                        table.c.state == DeliveryState.PENDING.value,
                    )
                )
                if head:
                    fresh.update(state=DeliveryState.QUEUED.value, next_attempt_at=None)
                else:
                    fresh.update(state=DeliveryState.PENDING.value, next_attempt_at=now)
            await conn.execute(update(table).where(table.c.id == delivery.id).values(**fresh))
            again = (await conn.execute(select(table).where(table.c.id == delivery.id))).first()
            return _delivery(again) if again is not None else None

    async def prune_webhook_deliveries(self, before: datetime, *, keep_per_endpoint: int) -> int:
        """Delete deliveries that finished before `before`, and each endpoint's oldest finished
        ones beyond `keep_per_endpoint`; unfinished ones are never pruned."""
        hooks, table = schema.webhooks, schema.webhook_deliveries
        finished = table.c.state.not_in(UNFINISHED)
        async with self._transaction("pruning webhook deliveries") as conn:
            removed = await conn.execute(
                delete(table).where(finished, table.c.finished_at < before)
            )
            count = removed.rowcount or 0
            for (endpoint_id,) in await conn.execute(select(hooks.c.id)):
                oldest_kept = await conn.scalar(
                    select(table.c.id)
                    .where(table.c.endpoint_id == endpoint_id, finished)
                    .order_by(table.c.id.desc())
                    .offset(keep_per_endpoint - 1)
                    .limit(1)
                )
                if oldest_kept is not None:
                    removed = await conn.execute(
                        delete(table).where(
                            table.c.endpoint_id == endpoint_id, finished, table.c.id < oldest_kept
                        )
                    )
                    count += removed.rowcount or 0
            return count

    async def unfinished_deliveries(self, endpoint_id: str) -> int:
        table = schema.webhook_deliveries
        async with self._transaction("counting waiting webhook deliveries") as conn:
            found = await conn.scalar(
                select(func.count())
                .select_from(table)
                .where(table.c.endpoint_id == endpoint_id, table.c.state.in_(UNFINISHED))
            )
            return int(found or 0)


async def _endpoint(
    conn: AsyncConnection, team_id: str, endpoint_id: str
) -> WebhookEndpoint | None:
    hooks = schema.webhooks
    row = (
        await conn.execute(
            select(hooks).where(hooks.c.team_id == team_id, hooks.c.id == endpoint_id)
        )
    ).first()
    return _endpoint_record(row) if row is not None else None


async def _claim(
    conn: AsyncConnection,
    endpoint_id: str,
    now: datetime,
    limit: int,
    booked_until: datetime,
    excluding: Collection[int],
) -> tuple[list[WebhookDelivery], datetime | None]:
    """Take up to `limit` due deliveries; when the lane has nothing in flight and took nothing,
    also when the next of the rest is due (a lane with attempts in flight looks again as soon as
    one finishes, so the read would only cost it a round trip)."""
    table = schema.webhook_deliveries
    rows = await conn.execute(
        _claim_statement(),
        {
            "claim_endpoint": endpoint_id,
            "claim_now": now,
            "claim_limit": limit,
            "claim_booked_until": booked_until,
            "claim_excluding": list(excluding),
        },
    )
    claimed = sorted((_delivery(row) for row in rows), key=lambda d: d.id)
    if len(claimed) >= limit or excluding or claimed:
        return claimed, None
    next_due: datetime | None = await conn.scalar(
        select(func.min(table.c.next_attempt_at)).where(
            table.c.endpoint_id == endpoint_id, table.c.state == DeliveryState.PENDING.value
        )
    )
    return claimed, next_due


@functools.cache
def _claim_statement() -> Update:
    """Built once: constructing it for every batch cost more than running it."""
    table = schema.webhook_deliveries
    now = bindparam("claim_now", type_=table.c.next_attempt_at.type)
    # Replicas claiming at once take different rows rather than race for the same ones; the
    # conditions are checked again on the rows once locked, in the same statement. Materialised,
    # or PostgreSQL may run the locking query again for each row it updates, each time skipping
    # the rows the last run locked, and take more than `limit`.
    taking = (
        select(table.c.id)
        .where(
            table.c.endpoint_id == bindparam("claim_endpoint"),
            table.c.state == DeliveryState.PENDING.value,
            table.c.next_attempt_at <= now,
            table.c.id.not_in(bindparam("claim_excluding", expanding=True)),
        )
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(bindparam("claim_limit", type_=Integer))
        .with_for_update(skip_locked=True)
        .cte("taking")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    return (
        update(table)
        .where(
            table.c.id.in_(select(taking.c.id)),
            table.c.state == DeliveryState.PENDING.value,
            table.c.next_attempt_at <= now,
        )
        .values(
            attempts=table.c.attempts + 1,
            next_attempt_at=bindparam("claim_booked_until", type_=table.c.next_attempt_at.type),
            last_attempt_at=now,
            first_attempt_at=func.coalesce(table.c.first_attempt_at, now),
        )
        .returning(*table.c)
    )


async def _lock_endpoint(
    conn: AsyncConnection, endpoint_id: str, succeeded_at: datetime | None
) -> None:
    """Lock the endpoint's row (writing `succeeded_at` if given) before any delivery: deleting
    an endpoint locks its row and then its deliveries, and the other order deadlocked."""
    hooks = schema.webhooks
    if succeeded_at is not None:
        await conn.execute(
            update(hooks).where(hooks.c.id == endpoint_id).values(last_success_at=succeeded_at)
        )
    else:
        await conn.execute(
            select(hooks.c.id).where(hooks.c.id == endpoint_id).with_for_update(key_share=True)
        )


async def _record(
    conn: AsyncConnection, endpoint_id: str, outcomes: Sequence[AttemptOutcome], now: datetime
) -> tuple[bool, list[str]]:
    """Whether the endpoint was disabled (a whole schedule spent), and the people whose
    delivery finished. A failed outcome needs the endpoint's row locked first."""
    hooks, table = schema.webhooks, schema.webhook_deliveries
    # In id order: rows that everyone locks in one order cannot deadlock.
    ordered = sorted(outcomes, key=lambda o: o.delivery.id)
    delivered = [o for o in ordered if o.state is DeliveryState.DELIVERED]
    retried = [o for o in ordered if o.state is DeliveryState.PENDING]
    failed = [o for o in ordered if o.state is DeliveryState.FAILED]
    attempt: BindParameter[int] = bindparam("attempt_id")
    for finished, state in (
        (delivered, DeliveryState.DELIVERED),
        (failed, DeliveryState.FAILED),
    ):
        if finished:
            await conn.execute(
                update(table)
                .where(table.c.id == attempt, table.c.state == DeliveryState.PENDING.value)
                .values(
                    state=state.value,
                    next_attempt_at=None,
                    finished_at=now,
                    last_status=bindparam("status"),
                    last_error=bindparam("error"),
                ),
                [_attempt_params(o) for o in finished],
            )
    if retried:
        await conn.execute(
            update(table)
            .where(table.c.id == attempt, table.c.state == DeliveryState.PENDING.value)
            .values(
                next_attempt_at=bindparam("retry_at"),
                last_status=bindparam("status"),
                last_error=bindparam("error"),
            ),
            [_attempt_params(o) for o in retried],
        )
    disabled = False
    for outcome in failed:
        since = outcome.delivery.first_attempt_at or now
        dead = await conn.scalar(
            select(func.count())
            .select_from(hooks)
            .where(
                hooks.c.id == endpoint_id,
                or_(hooks.c.last_success_at.is_(None), hooks.c.last_success_at < since),
            )
        )
        if dead:
            reason = "every attempt failed for a whole retry schedule"
            disabled = await _disable(conn, endpoint_id, reason, now) or disabled
    return disabled, sorted({o.delivery.user_id for o in (*delivered, *failed)})


async def _queue(
    conn: AsyncConnection,
    planned: Mapping[str, Sequence[NewDelivery]],
    max_unfinished: int,
    now: datetime,
    at_most: Mapping[str, int],
) -> tuple[dict[str, FanOut], dict[str, int]]:
    """Insert each endpoint's new deliveries, whose cursor the caller has moved past them in
    this transaction, as queued (for the lane to line up); an endpoint whose backlog would pass
    `max_unfinished` is disabled instead. A few statements for every endpoint together, not a
    few per endpoint. The outcome for each endpoint that has new deliveries, and a bound on each
    one's unfinished deliveries afterwards (counted only where `at_most` does not already keep it
    clear of `max_unfinished`)."""
    table = schema.webhook_deliveries
    wanted = [endpoint_id for endpoint_id, new in planned.items() if new]
    outcomes = {endpoint_id: FanOut.ADVANCED for endpoint_id in wanted}
    if not wanted:
        return outcomes, {}
    unfinished = {
        endpoint_id: at_most[endpoint_id]
        for endpoint_id in wanted
        if endpoint_id in at_most
        and at_most[endpoint_id] + len(planned[endpoint_id]) <= max_unfinished
    }
    uncounted = [endpoint_id for endpoint_id in wanted if endpoint_id not in unfinished]
    if uncounted:
        counted = await conn.execute(
            select(table.c.endpoint_id, func.count())
            .where(table.c.endpoint_id.in_(uncounted), table.c.state.in_(UNFINISHED))
            .group_by(table.c.endpoint_id)
        )
        unfinished.update({endpoint_id: 0 for endpoint_id in uncounted})
        unfinished.update({str(endpoint_id): int(count) for endpoint_id, count in counted})
    queueing: list[str] = []
    for endpoint_id in wanted:
        if unfinished.get(endpoint_id, 0) + len(planned[endpoint_id]) > max_unfinished:
            reason = f"more than {max_unfinished} deliveries were waiting"
            await _disable(conn, endpoint_id, reason, now)
            outcomes[endpoint_id] = FanOut.DISABLED
        else:
            queueing.append(endpoint_id)
    bounds = {e: unfinished[e] + len(planned[e]) for e in queueing}
    if not queueing:
        return outcomes, bounds
    rows = [
        {
            "endpoint_id": endpoint_id,
            "event_id": delivery.event_id,
            "user_id": delivery.user_id,
            "event_at": delivery.event_at,
            "payload": delivery.payload,
            "state": DeliveryState.QUEUED.value,
            "attempts": 0,
            "next_attempt_at": None,
            "created_at": now,
        }
        for endpoint_id in queueing
        for delivery in sorted(planned[endpoint_id], key=lambda d: d.event_id)
    ]
    for batch in chunks(rows, INSERT_ROWS):
        await conn.execute(insert(table), list(batch))
    return outcomes, bounds


async def _disable(conn: AsyncConnection, endpoint_id: str, reason: str, now: datetime) -> bool:
    hooks = schema.webhooks
    done = await conn.execute(
        update(hooks)
        .where(hooks.c.id == endpoint_id, hooks.c.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason, updated_at=now)
    )
    return bool(done.rowcount)


async def _line_up(
    conn: AsyncConnection, endpoint_id: str, people: Collection[str] | None, now: datetime
) -> int:
    """See `WebhookRepository.line_up`."""
    promoted = 0
    parts: list[Sequence[str] | None] = [None] if people is None else list(chunks(sorted(people)))
    for part in parts:
        params: dict[str, Any] = {"line_endpoint": endpoint_id, "line_now": now}
        if part is not None:
            params["line_people"] = list(part)
        done = await conn.execute(_line_up_statement(everyone=part is None), params)
        promoted += done.rowcount or 0
    return promoted


@functools.cache
def _line_up_statement(*, everyone: bool) -> Update:
    """Built once for each form, as `_claim_statement`."""
    table = schema.webhook_deliveries
    head = table.alias("head")
    oldest = (
        select(func.min(table.c.id))
        .where(
            table.c.endpoint_id == bindparam("line_endpoint"),
            table.c.state == DeliveryState.QUEUED.value,
        )
        .group_by(table.c.user_id)
        .correlate(None)
    )
    if not everyone:
        oldest = oldest.where(table.c.user_id.in_(bindparam("line_people", expanding=True)))
    pending = (
        select(head.c.id)
        .where(
            head.c.endpoint_id == table.c.endpoint_id,
            head.c.user_id == table.c.user_id,
            head.c.state == DeliveryState.PENDING.value,
        )
        .exists()
    )
    return (
        update(table)
        .where(table.c.id.in_(oldest), table.c.state == DeliveryState.QUEUED.value, ~pending)
        .values(
            state=DeliveryState.PENDING.value,
            next_attempt_at=bindparam("line_now", type_=table.c.next_attempt_at.type),
        )
    )


def _due(endpoint_id: str, now: datetime, limit: int, excluding: Collection[int]) -> Select[Any]:
    table = schema.webhook_deliveries
    query = (
        select(table)
        .where(
            table.c.endpoint_id == endpoint_id,
            table.c.state == DeliveryState.PENDING.value,
            table.c.next_attempt_at <= now,
        )
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(limit)
    )
    if excluding:
        query = query.where(table.c.id.not_in(list(excluding)))
    return query


def _attempt_params(outcome: AttemptOutcome) -> dict[str, Any]:
    params: dict[str, Any] = {
        "attempt_id": outcome.delivery.id,
        "status": outcome.status,
        "error": outcome.error,
    }
    if outcome.state is DeliveryState.PENDING:
        params["retry_at"] = outcome.retry_at
    return params


def _people_column(people: Sequence[str] | None) -> str | None:
    return json.dumps(list(people)) if people is not None else None


def _list_column(values: Sequence[str] | None) -> str | None:
    return " ".join(values) if values is not None else None


def _endpoint_record(row: Row[Any]) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id,
        team_id=row.team_id,
        url=row.url,
        secret=row.secret,
        people=tuple(json.loads(row.people)) if row.people is not None else None,
        availability=tuple(str(row.availability).split()) if row.availability is not None else None,
        description=row.description,
        enabled=bool(row.enabled),
        disabled_reason=row.disabled_reason,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        event_cursor=int(row.event_cursor),
        last_success_at=row.last_success_at,
    )


def _delivery(row: Row[Any]) -> WebhookDelivery:
    return WebhookDelivery(
        id=int(row.id),
        endpoint_id=row.endpoint_id,
        event_id=int(row.event_id),
        user_id=row.user_id,
        event_at=row.event_at,
        payload=row.payload,
        state=DeliveryState(row.state),
        attempts=int(row.attempts),
        next_attempt_at=row.next_attempt_at,
        first_attempt_at=row.first_attempt_at,
        last_attempt_at=row.last_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )
