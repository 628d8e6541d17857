"""Rate-budget scheduler: decides when each status write is sent, and with which expiration.

Slack lets a workspace make about 50 `users.profile.set` calls a minute, and 10 a minute to any
one profile (and, with one admin token, touch 30 distinct profiles a minute). A big company
making ordinary phone calls wants more writes than that, so each write must be spent where it
buys the most correct status time. The algorithm (docs/scheduler.md has the long version):

1. **Desires, coalesced.** The status writer submits, per person, what it wants shown (`show`)
   or put back (`release`). A newer desire replaces a queued one. A release whose show was never
   written is dropped (nothing to undo). A show equal to what the profile already shows is not
   written again; only its expiration is looked after.
2. **Eligibility.** A show waits until the call has lasted `call_debounce` seconds, so a ring
   and a one-second call never write. A release waits `gap_hold` seconds, so "On a call" is held
   through the gap between back-to-back calls without two writes. A written show becomes an
   *extension* candidate `extend_lead` seconds before its expiration while the call lasts.
3. **Value.** Every candidate gets the correct status-seconds one write buys, from a learned
   model of call lengths (`CallLengthModel`). A show: the call time it covers minus the
   ended-call time it shows, with the expiration that makes this largest (the median of the
   remaining call); calls have heavy tails, so a call that has lasted a while is worth more
   than one that just started. An extension: what moving the expiration out adds. A release:
   the time until our expiration would clear the status anyway, plus `restore_bonus` when the
   status to put back is not empty (no expiration can do that). A release whose status expires
   within `release_grace` seconds is not written at all.
4. **Budget.** Writes are paced by a token bucket (`burst`, refilled at
   `writes_per_window / window`) inside hard sliding windows per workspace, per profile and, in
   admin-token mode, for distinct profiles. Whenever a write may be sent, the most valuable
   candidates go first. A 429 pauses the method (or the profile) for its Retry-After; 5xx and
   network errors retry with bounded, jittered exponential backoff.
5. **Expiration.** The *price* of a write is the lowest number of status-seconds a write must
   buy for the calls now arriving to fit the budget: 0 while everything fits. At that price the
   model's plan says which expiration a write should carry: open-ended (`status_ttl`, released
   by a write at the end) or a quantile of the remaining call (cleared by Slack for free). With
   heavy-tailed calls the plan stays open-ended and the budget goes to the longest calls; with
   regular calls and a tight budget it picks expirations near their ends. A status whose
   restore target is not empty always gets `status_ttl`: a release is needed anyway.

The scheduler keeps no copy of what a profile shows: each desire says which status of ours is
shown and until when (`Desire.shown`), and the writer, which owns that, submits the person's
desire again after every write. So nothing here needs rebuilding after a restart but the
call-length model, which starts again from its prior and relearns within a few dozen calls.
The scheduler learns each ended call once, when its show is replaced by anything else.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar, Final, Literal, Protocol

from bot.policy import SlackStatus, StatusKind
from bot.slack.call_model import PRICE_LEVELS, CallLengthModel

log = logging.getLogger(__name__)

Action = Literal["show", "release"]
RateScope = Literal["method", "profile"]
_WriteKind = Literal["show", "extend", "release"]
_NEVER: Final = math.inf
_MIN_WAIT: Final = 0.001
_LOOKAHEAD: Final = 8
"""Ranked people assessed afresh to choose each write."""
_COMPACT_SLACK: Final = 1024
"""Stale heap entries tolerated beyond four per queued person before the heaps are rebuilt."""
_REFRESH_BATCH: Final = 256
"""Ranked people assessed again each second (round-robin) while writes wait for the budget:
10,000 waiting are all brought up to date within 40 s."""
_WINDOW_MARGIN: Final = 1.02
_WINDOW_SLACK_SECONDS: Final = 0.25
"""Our windows run a little longer than Slack's, so network jitter never tips a write over."""


class Outcome(Enum):
    """How a write ended, as far as the scheduler needs to know."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"
    RETRY = "retry"
    """A 5xx or a network error: nothing known to be written; try again later."""
    GONE = "gone"
    """Permanent: token revoked, user deactivated. The person's work is dropped."""
    SKIPPED = "skipped"
    """Nothing was written: when its turn came the desire no longer held, and the sender has
    already submitted (or cancelled) what holds now."""


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What became of one `users.profile.set`; `SendOutcome.OK`, `.RETRY`, `.GONE`, `.SKIPPED`
    or `SendOutcome.rate_limited(seconds, scope)`."""

    kind: Outcome
    retry_after: float = 0.0
    scope: RateScope = "method"

    OK: ClassVar[SendOutcome]
    RETRY: ClassVar[SendOutcome]
    GONE: ClassVar[SendOutcome]
    SKIPPED: ClassVar[SendOutcome]

    @classmethod
    def rate_limited(cls, retry_after: float, scope: RateScope = "method") -> SendOutcome:
        return cls(Outcome.RATE_LIMITED, max(0.0, retry_after), scope)


SendOutcome.OK = SendOutcome(Outcome.OK)
SendOutcome.RETRY = SendOutcome(Outcome.RETRY)
SendOutcome.GONE = SendOutcome(Outcome.GONE)
SendOutcome.SKIPPED = SendOutcome(Outcome.SKIPPED)


class StatusSender(Protocol):
    """Performs one write the scheduler chose (the status writer)."""

    async def send(self, desire: Desire, expiration: int) -> SendOutcome: ...


@dataclass(frozen=True, slots=True)
class Desire:
    """What the writer wants for one person; times are unix seconds."""

    key: str
    """The person, e.g. "T1:U123"."""
    action: Action
    status: SlackStatus
    """Show: what to show (the scheduler picks the expiration). Release: what to put back."""
    busy_since: float | None = None
    """Show: when the call or meeting began; None means when the desire was first submitted."""
    shown: SlackStatus | None = None
    """The status of ours the profile shows now, with its expiration; None if none of ours is.
    The writer owns it: after every write it submits the person's desire again with what the
    profile shows then, so the scheduler keeps no copy of its own."""
    restore_is_empty: bool = True
    """The status to put back afterwards is empty, so our expiration can do it for free."""
    kind: StatusKind = "call"
    """Which call-length model the show's duration is judged by, and taught."""


@dataclass(slots=True)
class SchedulerStats:
    """Counters since start, for logs, the doctor command and benchmarks."""

    submitted: int = 0
    writes: int = 0
    """`users.profile.set` calls started, whatever their outcome."""
    shows: int = 0
    extends: int = 0
    releases: int = 0
    rate_limited: int = 0
    retries: int = 0
    gave_up: int = 0
    gone: int = 0
    dropped_equal: int = 0
    """Shows not written because the profile already showed them."""
    dropped_unwritten: int = 0
    """Releases not written because their show never was."""
    expired_by_ttl: int = 0
    """Releases not written because our expiration clears (or cleared) the status anyway."""
    bridged_gaps: int = 0
    """Releases cancelled by the next call within the gap hold."""
    skipped: int = 0
    """Writes whose desire no longer held when their turn came (decided again at that moment)."""


@dataclass(slots=True, eq=False)
class _Person:
    key: str
    want: Desire | None = None
    wanted_at: float = 0.0
    """Monotonic time `want` arrived (a replaced release keeps the first one's)."""
    wanted_wall: float = 0.0
    not_before: float = 0.0
    attempts: int = 0

    def shown(self) -> SlackStatus | None:
        """Ours on the profile, as the writer last told (with its expiration)."""
        return self.want.shown if self.want is not None else None

    def shows(self, status: SlackStatus, wall: float) -> bool:
        shown = self.shown()
        return shown is not None and wall < shown.expiration and shown.same_as(status)

    def needs_write(self, wall: float) -> bool:
        want = self.want
        if want is None:
            return False
        return want.action == "release" or not self.shows(want.status, wall)


@dataclass(slots=True)
class _Candidate:
    person: _Person
    write: _WriteKind
    value: float


@dataclass(slots=True)
class _Budget:
    """The workspace-wide limits: paced tokens inside a hard sliding window, and 429 pauses."""

    limit: int
    window: float
    burst: float
    tokens: float
    refilled_at: float
    sent: deque[float] = field(default_factory=deque)
    paused_until: float = 0.0

    def ready(self, now: float) -> float:
        """Writes that may be sent now (fractional: the bucket refills continuously)."""
        if now < self.paused_until:
            return 0.0
        self._refill(now)
        while self.sent and self.sent[0] <= now - self.window:
            self.sent.popleft()
        return max(0.0, min(self.tokens, float(self.limit - len(self.sent))))

    def capacity(self, now: float) -> int:
        return int(self.ready(now) + 1e-9)

    def spend(self, now: float) -> None:
        self._refill(now)
        self.tokens = max(0.0, self.tokens - 1)
        self.sent.append(now)

    def free_at(self, now: float) -> float:
        """When at least one write may be sent again."""
        at = max(now, self.paused_until)
        if self.tokens < 1:
            at = max(at, now + (1 - self.tokens) * self.window / self.limit)
        if len(self.sent) >= self.limit:
            at = max(at, self.sent[len(self.sent) - self.limit] + self.window)
        return at

    def _refill(self, now: float) -> None:
        rate = self.limit / self.window
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.refilled_at) * rate)
        self.refilled_at = now


@dataclass(slots=True)
class _RateCounter:
    """Events per second over roughly the last `memory` seconds (exponentially weighted)."""

    memory: float
    started_at: float
    shortest: float
    """Never average over less than this, so that the first event is not a burst."""
    weight: float = 0.0
    counted_at: float = 0.0

    def count(self, now: float) -> None:
        self.weight = self._decayed(now) + 1.0
        self.counted_at = now

    def rate(self, now: float) -> float:
        # Early on the average has seen less than `memory` seconds: scale it up to match.
        seen = 1.0 - math.exp(-max(now - self.started_at, self.shortest) / self.memory)
        return self._decayed(now) / self.memory / seen

    def _decayed(self, now: float) -> float:
        return self.weight * math.exp(-max(0.0, now - self.counted_at) / self.memory)


class StatusScheduler:
    """One per workspace: turns desires into `users.profile.set` calls within Slack's budget.

    `run(sender)` sends until cancelled: `sender.send(desire, expiration)` performs one write
    (the writer owns tokens, claims, the store) and reports its outcome; `expiration` is unix
    seconds (a release passes its restore target's own). Before it returns OK, the sender
    submits what follows (the show now shown, or nothing). The writer calls `cancel(key)` when
    it has nothing more to write for a person.
    """

    def __init__(
        self,
        *,
        writes_per_window: int = 50,
        writes_per_profile: int = 10,
        distinct_profiles: int | None = None,
        window: float = 60.0,
        burst: int = 10,
        status_ttl: float = 3600.0,
        call_debounce: float = 2.0,
        gap_hold: float = 2.0,
        extend_lead: float = 30.0,
        release_grace: float = 5.0,
        min_horizon: float = 20.0,
        rate_memory: float = 600.0,
        restore_bonus: float | None = None,
        max_in_flight: int = 8,
        base_backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_attempts: int = 8,
        call_model: CallLengthModel | None = None,
        meeting_model: CallLengthModel | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if writes_per_window < 1 or writes_per_profile < 1 or window <= 0:
            raise ValueError("the budget needs at least one write per positive window")
        if distinct_profiles is not None and distinct_profiles < 1:
            raise ValueError("distinct_profiles must be at least 1")
        if rate_memory <= 0:
            raise ValueError("rate_memory must be positive")
        if max_in_flight < 1 or max_attempts < 1 or burst < 1:
            raise ValueError("max_in_flight, max_attempts and burst must be at least 1")
        self._sender: StatusSender | None = None
        self._per_profile = writes_per_profile
        self._distinct_limit = distinct_profiles
        # Requests reach Slack some milliseconds after we send them, in any order: a window a
        # little longer than Slack's keeps jitter from landing two windows' worth in one of its.
        self._window = window * _WINDOW_MARGIN + _WINDOW_SLACK_SECONDS
        self._status_ttl = status_ttl
        self._debounce = call_debounce
        self._gap_hold = gap_hold
        self._extend_lead = extend_lead
        self._release_grace = release_grace
        self._min_horizon = min(min_horizon, status_ttl)
        self._restore_bonus = status_ttl if restore_bonus is None else restore_bonus
        self._max_in_flight = max_in_flight
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._max_attempts = max_attempts
        self._models: dict[StatusKind, CallLengthModel] = {
            "call": call_model or CallLengthModel(),
            "meeting": meeting_model
            or CallLengthModel(prior_mean=1800.0, prior_sigma=0.6, prior_weight=10.0),
        }
        self._arrivals: dict[StatusKind, _RateCounter] = {
            kind: _RateCounter(rate_memory, clock(), self._window) for kind in self._models
        }
        self._price = 0.0
        self._priced_at = -_NEVER
        self._clock = clock
        self._wall = wall_clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._budget = _Budget(
            limit=writes_per_window,
            window=self._window,
            burst=float(min(burst, writes_per_window)),
            tokens=float(min(burst, writes_per_window)),
            refilled_at=clock(),
        )
        self._people: dict[str, _Person] = {}
        # Who needs looking at again, and when: a dispatch assesses only these, not everyone.
        self._dirty: dict[str, None] = {}
        """A dict for its order: ties go to whoever changed first."""
        self._timers: list[tuple[float, int, str, int]] = []
        """(when to look again, order, key, version): people not ready before then."""
        self._ranked: list[tuple[float, int, str, int]] = []
        """(-value, order, key, version): people ready to be written, best first."""
        self._versions: dict[str, int] = {}
        """Each key's latest assessment: heap entries of an older one are skipped."""
        self._order = 0
        self._refresh: deque[str] = deque()
        self._refreshed_at = -_NEVER
        """Ready people whose values are brought up to date a few per dispatch, round-robin."""
        self._profile_sends: dict[str, deque[float]] = {}
        self._recent_profiles: OrderedDict[str, float] = OrderedDict()
        self._contended_at = -_NEVER
        self._tasks: set[asyncio.Task[None]] = set()
        self._writing: set[str] = set()
        """Keys with a write in flight: one at a time per person, even across a cancel()."""
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._running = False
        self.stats = SchedulerStats()

    # ------------------------------------------------------------------------ the writer's side

    def submit(self, desire: Desire) -> None:
        """Want `desire` for its person; it replaces anything still queued for them."""
        now, wall = self._clock(), self._wall()
        self.stats.submitted += 1
        person = self._people.get(desire.key)
        if person is None:
            person = self._people[desire.key] = _Person(desire.key)
        old = person.want
        self._learn(person, old, desire, wall)
        if desire.action == "release":
            self._want_release(person, old, desire, now, wall)
        else:
            self._want_show(person, old, desire, now, wall)
        self._dirty.setdefault(desire.key, None)
        self._wake.set()

    def cancel(self, key: str) -> None:
        """Forget the person's queued work; their call, if any, goes on (a manual change)."""
        self._people.pop(key, None)
        self._dirty.setdefault(key, None)
        self._wake.set()

    def end(self, key: str) -> None:
        """The person's call or meeting is over with nothing to write: learn how long it was
        (a call shorter than the debounce counts too), then forget the queued work."""
        person = self._people.pop(key, None)
        if person is not None and person.want is not None and person.want.action == "show":
            self._learn(person, person.want, None, self._wall())
        self._dirty.setdefault(key, None)
        self._wake.set()

    def model(self, kind: StatusKind = "call") -> CallLengthModel:
        return self._models[kind]

    def pending(self) -> int:
        """People with a write still to make (future extensions of shown calls not counted)."""
        wall = self._wall()
        return sum(1 for person in self._people.values() if person.needs_write(wall))

    def budget_in_use(self) -> tuple[int, int]:
        """Writes sent within the current window, and how many it allows (read by /metrics)."""
        since = self._clock() - self._window
        return sum(1 for at in self._budget.sent if at > since), self._budget.limit

    def binding(self) -> bool:
        """Whether a write waited for budget within the last window."""
        return self._clock() - self._contended_at < self._window

    def price(self) -> float:
        """What a write is worth now, in status-seconds: 0 while the budget does not bind."""
        return self._current_price()

    async def drain(self) -> None:
        """Wait until every queued write is made or dropped (`run()` must be running)."""
        if not self._running:
            raise RuntimeError("drain() needs run() to be running")
        while self.pending() or self._tasks:
            self._progress.clear()
            await self._progress.wait()

    # ------------------------------------------------------------------------ the loop

    async def run(self, sender: StatusSender) -> None:
        """Send writes through `sender` until cancelled; writes in flight are then cancelled
        and awaited."""
        if self._running:
            raise RuntimeError("the scheduler is already running")
        self._running = True
        self._sender = sender
        replanning: asyncio.Task[None] | None = None
        try:
            while True:
                self._wake.clear()
                delay = self._dispatch()
                self._progress.set()
                if replanning is None or replanning.done():
                    due = [model for model in self._models.values() if model.plan_due]
                    replanning = asyncio.create_task(self._replan(due)) if due else None
                await self._wait(delay)
        finally:
            self._running = False
            tasks = list(self._tasks)
            if replanning is not None:
                tasks.append(replanning)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    async def _replan(models: list[CallLengthModel]) -> None:
        """Solve the models' plans again a step at a time, so presence events are never held
        up behind a whole solve; the old plans serve meanwhile."""
        for model in models:
            for _ in model.solve_in_steps():
                await asyncio.sleep(0)

    async def _wait(self, delay: float) -> None:
        if delay == _NEVER:
            await self._wake.wait()
            return
        sleeper = asyncio.ensure_future(self._sleep(max(0.0, delay)))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (sleeper, waker):
                waiter.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    def _dispatch(self) -> float:
        """Start what may be sent now; return seconds until something may change by itself.

        Only the people whose desire or write changed since the last dispatch, and those whose
        time to be looked at again has come, are assessed, so its cost does not grow with the
        queue. The ready are kept best first by the value they had when last assessed; the best
        and the few behind it are assessed again before one is written, the best of them now
        (values drift slowly with a call's age, and a few more are refreshed at each dispatch).
        """
        now, wall = self._clock(), self._wall()
        while self._timers and self._timers[0][0] <= now:
            _, _, key, version = heapq.heappop(self._timers)
            if self._versions.get(key) == version:
                self._dirty.setdefault(key, None)
        dirty, self._dirty = self._dirty, {}
        for key in dirty:
            self._reassess(key, now, wall)
        budget_left = self._budget.capacity(now)
        slots = min(budget_left, self._max_in_flight - len(self._tasks))
        if slots <= 0:
            # Nothing can be sent before the budget frees or a write finishes (which wakes
            # the loop): choosing now would be wasted work.
            if budget_left <= 0 and (self._ranked or self._timers):
                self._contended_at = now
                return max(_MIN_WAIT, min(self._budget.free_at(now), self._next_timer()) - now)
            return self._wait_for(self._next_timer(), now)
        self._refresh_some(now, wall)
        next_at = _NEVER
        while slots > 0:
            # The best few by the value they had when ranked, each assessed now; the best of
            # them goes, the others are ranked again by what they are worth now.
            picks: list[_Candidate] = []
            while len(picks) < _LOOKAHEAD and (ranked := self._pop_ranked()) is not None:
                person = self._people[ranked]
                candidate, ready_at = self._assess(person, now, wall)
                if candidate is None:
                    self._file(ranked, person, None, ready_at, now)
                else:
                    picks.append(candidate)
            if not picks:
                break
            picks.sort(key=lambda c: c.value, reverse=True)
            best = picks[0]
            for other in picks[1:]:
                self._file(other.person.key, other.person, other, _NEVER, now)
            key = best.person.key
            wait_until = self._distinct_free_at(key, now)
            if wait_until > now:
                self._file(key, best.person, None, wait_until, now)
                continue
            self._versions[key] = self._versions.get(key, 0) + 1
            self._start(best, now, wall)
            slots -= 1
        if slots <= 0 and self._peek_ranked() is not None and self._budget.capacity(now) == 0:
            # Otherwise a finishing write or the distinct-profiles window wakes the loop.
            next_at = self._budget.free_at(now)
            self._contended_at = now
        return self._wait_for(min(next_at, self._next_timer()), now)

    def _reassess(self, key: str, now: float, wall: float) -> None:
        person = self._people.get(key)
        if person is None:
            self._versions.pop(key, None)
            return
        candidate, ready_at = self._assess(person, now, wall)
        self._file(key, person, candidate, ready_at, now)

    def _file(
        self,
        key: str,
        person: _Person,
        candidate: _Candidate | None,
        ready_at: float,
        now: float,
    ) -> None:
        """Put a person where their assessment says: ranked, timed, or forgotten."""
        version = self._versions[key] = self._versions.get(key, 0) + 1
        self._order += 1
        if len(self._ranked) + len(self._timers) > 4 * len(self._people) + _COMPACT_SLACK:
            self._compact()
        if candidate is not None:
            heapq.heappush(self._ranked, (-candidate.value, self._order, key, version))
        elif ready_at < _NEVER:
            heapq.heappush(self._timers, (ready_at, self._order, key, version))
        elif key not in self._writing and person.want is None:
            # Nothing to do: nothing worth remembering.
            del self._people[key]
            del self._versions[key]
            self._forget_old_sends(key, now)

    def _compact(self) -> None:
        """Drop the entries of older assessments, which otherwise leave only from the top."""

        def live(entry: tuple[float, int, str, int]) -> bool:
            return self._versions.get(entry[2]) == entry[3] and entry[2] in self._people

        self._ranked = [entry for entry in self._ranked if live(entry)]
        self._timers = [entry for entry in self._timers if live(entry)]
        heapq.heapify(self._ranked)
        heapq.heapify(self._timers)

    def _pop_ranked(self) -> str | None:
        while self._ranked:
            _, _, key, version = heapq.heappop(self._ranked)
            if self._versions.get(key) == version and key in self._people:
                return key
        return None

    def _peek_ranked(self) -> float | None:
        """The best ranked value still current (stale entries are dropped on the way)."""
        while self._ranked:
            value, _, key, version = self._ranked[0]
            if self._versions.get(key) == version and key in self._people:
                return -value
            heapq.heappop(self._ranked)
        return None

    def _refresh_some(self, now: float, wall: float) -> None:
        """Bring a few ranked values up to date, so that none drifts for long; only when more
        are ranked than can be written now, and at most once a second."""
        if len(self._ranked) <= 1 or now - self._refreshed_at < 1.0:
            return
        self._refreshed_at = now
        if not self._refresh:
            self._refresh.extend(key for _, _, key, _ in self._ranked)
        for _ in range(min(_REFRESH_BATCH, len(self._refresh))):
            key = self._refresh.popleft()
            person = self._people.get(key)
            if person is not None and key not in self._writing:
                self._reassess(key, now, wall)

    def _next_timer(self) -> float:
        return self._timers[0][0] if self._timers else _NEVER

    @staticmethod
    def _wait_for(at: float, now: float) -> float:
        if at == _NEVER:
            return _NEVER
        # Wall-clock seconds near 1.7e9 resolve to about 0.2 µs; a shorter wait could wake to
        # an unchanged clock and spin.
        return max(_MIN_WAIT, at - now)

    def _current_price(self) -> float:
        # The price moves with arrival rates and the model: recomputing it once a second is
        # plenty, and it is asked for at every write.
        now = self._clock()
        if now - self._priced_at >= 1.0:
            self._price = self._clearing_price(now)
            self._priced_at = now
        return self._price

    def _clearing_price(self, now: float) -> float:
        """The price at which the plans of all calls now arriving fit in the budget.

        Each kind's model says how many writes a call costs when every write must buy a given
        price (`writes_per_call`); the arrival rates say how many calls come in. The lowest
        price at which the demand fits the budget is what a write is worth: 0 while it fits
        at any price. Interpolated between the models' price levels.
        """
        rates = {kind: counter.rate(now) for kind, counter in self._arrivals.items()}
        supply = self._budget.limit / self._window
        previous_price, previous_demand = 0.0, math.inf
        for price in PRICE_LEVELS:
            demand = sum(
                rate * self._models[kind].writes_per_call(price, self._debounce)
                for kind, rate in rates.items()
                if rate > 0
            )
            if demand <= supply:
                if previous_demand == math.inf or previous_demand <= demand:
                    return price
                share = (previous_demand - supply) / (previous_demand - demand)
                return previous_price + (price - previous_price) * share
            previous_price, previous_demand = price, demand
        return PRICE_LEVELS[-1]

    def _assess(self, person: _Person, now: float, wall: float) -> tuple[_Candidate | None, float]:
        """The write this person needs now, if any, else when to look again."""
        want = person.want
        if want is None or person.key in self._writing:
            return None, _NEVER
        if now < person.not_before:
            return None, person.not_before
        sends = self._forget_old_sends(person.key, now)
        if len(sends) >= self._per_profile:
            return None, sends[-self._per_profile] + self._window
        if want.action == "release":
            return self._assess_release(person, want, now, wall)
        model = self._models[want.kind]
        elapsed = self._elapsed(person, want, wall)
        shown = want.shown
        if shown is not None and person.shows(want.status, wall):
            slack = shown.expiration - wall
            if slack > self._extend_lead:
                return None, now + slack - self._extend_lead
            return _Candidate(person, "extend", model.extension_value(elapsed, slack)), _NEVER
        if elapsed < self._debounce:
            return None, now + self._debounce - elapsed
        return _Candidate(person, "show", model.write_value(elapsed)), _NEVER

    def _assess_release(
        self, person: _Person, want: Desire, now: float, wall: float
    ) -> tuple[_Candidate | None, float]:
        held_until = person.wanted_at + self._gap_hold
        if now < held_until:
            return None, held_until
        if want.shown is None:
            person.want = None
            self.stats.dropped_unwritten += 1
            return None, _NEVER
        remaining = want.shown.expiration - wall
        if want.restore_is_empty:
            if remaining <= self._release_grace:
                person.want = None
                self.stats.expired_by_ttl += 1
                return None, _NEVER
            return _Candidate(person, "release", remaining), _NEVER
        return _Candidate(person, "release", max(0.0, remaining) + self._restore_bonus), _NEVER

    def _start(self, candidate: _Candidate, now: float, wall: float) -> None:
        person = candidate.person
        desire = person.want
        assert desire is not None
        if candidate.write == "release":
            expiration = desire.status.expiration
        else:
            expiration = self._expiration(person, desire, wall)
        self._writing.add(person.key)
        self._budget.spend(now)
        self._profile_sends.setdefault(person.key, deque()).append(now)
        if self._distinct_limit is not None:
            self._recent_profiles[person.key] = now
            self._recent_profiles.move_to_end(person.key)
        self.stats.writes += 1
        task = asyncio.create_task(self._write(person, desire, candidate.write, expiration))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _expiration(self, person: _Person, desire: Desire, wall: float) -> int:
        horizon = self._status_ttl
        if desire.restore_is_empty:
            # With a status to put back a release is needed anyway: a shorter expiration
            # would only risk showing nothing in the middle of the call.
            elapsed = self._elapsed(person, desire, wall)
            price = self._current_price()
            planned = self._models[desire.kind].plan_horizon(elapsed, price)
            horizon = min(horizon, planned)
        horizon = min(self._status_ttl, max(self._min_horizon, horizon))
        if desire.shown is not None and person.shows(desire.status, wall):
            # An extension that does not move the expiration out would be a wasted write.
            horizon = max(
                horizon, min(self._status_ttl, desire.shown.expiration - wall + self._min_horizon)
            )
        return math.ceil(wall + horizon)

    @staticmethod
    def _elapsed(person: _Person, desire: Desire, wall: float) -> float:
        began = desire.busy_since if desire.busy_since is not None else person.wanted_wall
        return max(0.0, wall - began)

    async def _write(
        self, person: _Person, desire: Desire, write: _WriteKind, expiration: int
    ) -> None:
        try:
            assert self._sender is not None
            outcome = await self._sender.send(desire, expiration)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("status write for %s failed", desire.key)
            outcome = SendOutcome.RETRY
        finally:
            self._writing.discard(person.key)
        self._settle(person, desire, write, expiration, outcome)
        self._dirty.setdefault(person.key, None)
        self._wake.set()

    def _settle(
        self,
        person: _Person,
        desire: Desire,
        write: _WriteKind,
        expiration: int,
        outcome: SendOutcome,
    ) -> None:
        now = self._clock()
        current = self._people.get(person.key) is person
        if outcome.kind is Outcome.OK:
            # The writer has already submitted what follows (it owns what the profile shows).
            person.attempts = 0
            if write == "release":
                self.stats.releases += 1
                if person.want == desire:
                    person.want = None
            else:
                if write == "extend":
                    self.stats.extends += 1
                else:
                    self.stats.shows += 1
            return
        if outcome.kind is Outcome.RATE_LIMITED:
            self.stats.rate_limited += 1
            if outcome.scope == "profile":
                person.not_before = now + outcome.retry_after
            else:
                self._budget.paused_until = max(
                    self._budget.paused_until, now + outcome.retry_after
                )
                self._contended_at = now
            log.info(
                "users.profile.set rate limited (%s) for %.1fs", outcome.scope, outcome.retry_after
            )
            return
        if outcome.kind is Outcome.SKIPPED:
            self.stats.skipped += 1
            return
        if outcome.kind is Outcome.GONE:
            self.stats.gone += 1
            if current:
                del self._people[person.key]
            log.warning("dropping status work for %s: its token or user is gone", person.key)
            return
        self.stats.retries += 1
        person.attempts += 1
        if person.attempts >= self._max_attempts:
            self.stats.gave_up += 1
            person.attempts = 0
            if person.want == desire:
                person.want = None
            log.warning(
                "giving up a status write for %s after %d attempts", person.key, self._max_attempts
            )
            return
        delay = min(self._max_backoff, self._base_backoff * 2 ** (person.attempts - 1))
        person.not_before = now + delay * (0.5 + 0.5 * self._rng.random())

    # ------------------------------------------------------------------------ submit helpers

    def _want_release(
        self, person: _Person, old: Desire | None, desire: Desire, now: float, wall: float
    ) -> None:
        if desire.shown is None and person.key not in self._writing:
            # Nothing of ours was ever written: there is nothing to undo.
            if old is not None:
                self.stats.dropped_unwritten += 1
            person.want = None
            return
        if old is None or old.action != "release":
            person.wanted_at = now
            person.wanted_wall = wall
            person.attempts = 0
        person.want = desire

    def _want_show(
        self, person: _Person, old: Desire | None, desire: Desire, now: float, wall: float
    ) -> None:
        same_call = (
            old is not None
            and old.action == "show"
            and old.busy_since == desire.busy_since
            and old.status.same_as(desire.status)
        )
        person.want = desire
        if same_call:
            return
        self._arrivals[desire.kind].count(now)
        person.wanted_at = now
        person.wanted_wall = wall
        person.attempts = 0
        if person.shows(desire.status, wall):
            self.stats.dropped_equal += 1
            if old is not None and old.action == "release":
                self.stats.bridged_gaps += 1

    def _learn(self, person: _Person, old: Desire | None, new: Desire | None, wall: float) -> None:
        """A show replaced by anything but the same call (or ended, `new` None) means the call
        ended: learn its length."""
        if old is None or old.action != "show":
            return
        if (
            new is not None
            and new.action == "show"
            and new.kind == old.kind
            and new.busy_since == old.busy_since
        ):
            return
        if old.kind == "meeting" and new is not None and new.action != "release":
            return  # a call during a meeting interrupts it; the meeting has not ended
        began = old.busy_since if old.busy_since is not None else person.wanted_wall
        self._models[old.kind].observe(max(0.0, wall - began))

    def _forget_old_sends(self, key: str, now: float) -> Sequence[float]:
        """The person's writes within the window (dropping the record once there are none)."""
        sends = self._profile_sends.get(key)
        if sends is None:
            return ()
        while sends and sends[0] <= now - self._window:
            sends.popleft()
        if not sends:
            del self._profile_sends[key]
        return sends

    def _distinct_free_at(self, key: str, now: float) -> float:
        """When `key` may be written under the distinct-profiles limit (now if it may already)."""
        if self._distinct_limit is None:
            return now
        recent = self._recent_profiles
        while recent:
            oldest_key, oldest = next(iter(recent.items()))
            if oldest > now - self._window:
                break
            del recent[oldest_key]
        if key in recent or len(recent) < self._distinct_limit:
            return now
        return next(iter(recent.values())) + self._window
