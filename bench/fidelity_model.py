"""Status fidelity under Slack's write budget: simulated calls, a fake Slack, and three bridges.

A deterministic discrete-event model, run in virtual time (a whole simulated hour takes
seconds): each person makes calls (Poisson arrivals, lognormal durations), a fake Slack enforces
`users.profile.set` limits and records what every profile shows over time, and a bridge turns
call starts and ends into writes. Three bridges are compared:

- `ours`: the real `StatusScheduler`, fed the desires the status writer would submit;
- `naive`: one write per event, in order, waiting out every 429 and retrying;
- `ideal`: an oracle that knows every call's end: one write per call, expiring at the true
  end, longest calls first. No bridge that learns a call's end only when it happens beats it.

Two workloads. `calls` is the issue's as written: each call is a start and an end. `ringcentral`
is the same calls as RingCentral's presence feed reports them: a `Ringing` event before each call
is answered, holds (`OnHold`, then `CallConnected` again) during some calls, and rings nobody
answers (`Ringing`, then `NoCall`). The on-call time, and so the truth, is the same in both; only
the events differ, and a bridge that writes once per event pays for every one of them.

Measures, over the simulated span: *coverage* (share of on-call person-time during which the
profile shows the call), *false busy* (person-time showing a call that has ended, as a share of
on-call time), and the error ratio (1 - coverage) + false busy.

Run `python -m bench.fidelity_model [--ringing]` for the table at 500 and 2,000 people.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from bench.virtual_time import run_in_virtual_time as run_virtual
from bot.policy import EMPTY_STATUS, SlackStatus
from bot.slack.scheduler import Desire, SendOutcome, StatusScheduler

EPOCH = 1_767_225_600
"""Unix time of the simulation's second 0 (virtual loop time 0)."""
CALL_STATUS = SlackStatus("On a call", ":telephone_receiver:")


# ---------------------------------------------------------------------------------- workload


@dataclass(frozen=True, slots=True)
class Workload:
    people: int = 2000
    span: float = 3600.0
    calls_per_hour: float = 1.5
    mean_call: float = 240.0
    sigma: float = 1.0
    """Of the log of the duration; 1.0 makes the median about 61% of the mean."""
    seed: int = 1
    writes_per_window: int = 50
    writes_per_profile: int = 10
    window: float = 60.0
    latency: float = 0.1
    """Seconds one users.profile.set takes."""
    ringing: bool = False
    """Report calls as RingCentral does (rings, holds, missed rings), not as starts and ends."""
    ring_mean: float = 6.0
    """Mean seconds an answered call rings first (exponential, at most `missed_ring`)."""
    missed_per_hour: float = 0.5
    """Unanswered rings per person per hour, on top of the answered calls."""
    missed_ring: float = 20.0
    """Seconds an unanswered ring lasts before it stops (about five rings)."""
    hold_share: float = 0.25
    """Share of calls of a minute or more that are put on hold once."""
    hold_mean: float = 30.0
    """Mean seconds on hold (exponential, ending at least 5 s before the call does)."""


Call = tuple[float, float]
PhoneEvent = tuple[float, str, str]
"""(loop seconds, person key, telephonyStatus after the change)."""

RINGING, CONNECTED, ON_HOLD, NO_CALL = "Ringing", "CallConnected", "OnHold", "NoCall"


def generate_calls(workload: Workload) -> dict[str, list[Call]]:
    """Each person's calls as (start, end) loop seconds; one call at a time per person."""
    rng = random.Random(workload.seed)
    rate = workload.calls_per_hour / 3600.0
    mu = math.log(workload.mean_call) - workload.sigma**2 / 2
    calls: dict[str, list[Call]] = {}
    for index in range(workload.people):
        key = f"T1:U{index:05d}"
        person: list[Call] = []
        t = rng.expovariate(rate)
        while t < workload.span:
            duration = rng.lognormvariate(mu, workload.sigma)
            person.append((t, t + duration))
            t += duration + rng.expovariate(rate)
        calls[key] = person
    return calls


def phone_events(workload: Workload, calls: dict[str, list[Call]]) -> list[PhoneEvent]:
    """The telephony changes the presence feed reports for `calls`, in time order.

    Without `workload.ringing`, a call is a `CallConnected` and a `NoCall`. With it, each call
    rings first, some go on hold, and unanswered rings fall in the gaps between calls; none of
    that changes when a person is on a call.
    """
    # A separate generator, so both workloads share the very same calls.
    rng = random.Random(workload.seed * 7919 + 1)
    events: list[PhoneEvent] = []
    for key, person in calls.items():
        previous_end = 0.0
        for start, end in person:
            if workload.ringing:
                ring = min(rng.expovariate(1.0 / workload.ring_mean), workload.missed_ring)
                ring_start = max(start - ring, previous_end + 0.5 * (start - previous_end))
                _missed_rings(workload, rng, key, previous_end, ring_start, events)
                events.append((ring_start, key, RINGING))
            events.append((start, key, CONNECTED))
            if workload.ringing and end - start >= 60.0 and rng.random() < workload.hold_share:
                hold_start = rng.uniform(start + 10.0, end - 20.0)
                hold_end = min(hold_start + rng.expovariate(1.0 / workload.hold_mean), end - 5.0)
                if hold_end > hold_start:
                    events.append((hold_start, key, ON_HOLD))
                    events.append((hold_end, key, CONNECTED))
            events.append((end, key, NO_CALL))
            previous_end = end
        if workload.ringing:
            _missed_rings(workload, rng, key, previous_end, workload.span, events)
    events.sort(key=lambda event: event[0])
    return events


def _missed_rings(
    workload: Workload,
    rng: random.Random,
    key: str,
    after: float,
    before: float,
    events: list[PhoneEvent],
) -> None:
    """Unanswered rings in the idle stretch (after, before), a few seconds clear of either end."""
    if workload.missed_per_hour <= 0:
        return
    rate = workload.missed_per_hour / 3600.0
    t = after + rng.expovariate(rate)
    while t + workload.missed_ring + 2.0 < before:
        if t > after + 2.0:
            events.append((t, key, RINGING))
            events.append((t + workload.missed_ring, key, NO_CALL))
        t += workload.missed_ring + rng.expovariate(rate)


# ---------------------------------------------------------------------------------- fake Slack


@dataclass(slots=True)
class FakeSlack:
    """`users.profile.set` limits, and what each profile shows from when (loop seconds)."""

    clock: Any
    writes_per_window: int
    writes_per_profile: int
    window: float
    writes: int = 0
    refused: int = 0
    _method: deque[float] = field(default_factory=deque)
    _profiles: dict[str, deque[float]] = field(default_factory=dict)
    timelines: dict[str, list[tuple[float, bool, float]]] = field(default_factory=dict)
    """Per person: (from, shows a call, until) where `until` is the expiration (inf if none)."""

    def write(self, key: str, status: SlackStatus, expiration: int) -> SendOutcome:
        now = self.clock()
        wait = _sliding_wait(self._method, self.writes_per_window, self.window, now)
        if wait is not None:
            self.refused += 1
            return SendOutcome.rate_limited(max(1, math.ceil(wait)))
        profile = self._profiles.setdefault(key, deque())
        wait = _sliding_wait(profile, self.writes_per_profile, self.window, now)
        if wait is not None:
            self.refused += 1
            return SendOutcome.rate_limited(max(1, math.ceil(wait)), "profile")
        self._method.append(now)
        profile.append(now)
        self.writes += 1
        until = expiration - EPOCH if expiration else math.inf
        self.timelines.setdefault(key, []).append((now, status.same_as(CALL_STATUS), until))
        return SendOutcome.OK


def _sliding_wait(times: deque[float], limit: int, window: float, now: float) -> float | None:
    while times and times[0] <= now - window:
        times.popleft()
    if len(times) < limit:
        return None
    return times[0] + window - now


# ---------------------------------------------------------------------------------- measuring


@dataclass(frozen=True, slots=True)
class Fidelity:
    coverage: float
    false_busy: float
    writes: int
    refused: int

    @property
    def error_ratio(self) -> float:
        return (1.0 - self.coverage) + self.false_busy


def measure(
    calls: dict[str, list[Call]],
    timelines: dict[str, list[tuple[float, bool, float]]],
    span: float,
    *,
    writes: int = 0,
    refused: int = 0,
) -> Fidelity:
    on_call = covered = shown_total = 0.0
    for key, person in calls.items():
        busy = [(start, min(end, span)) for start, end in person if start < span]
        shown = _shown_intervals(timelines.get(key, []), span)
        on_call += sum(end - start for start, end in busy)
        shown_total += sum(end - start for start, end in shown)
        covered += _overlap(busy, shown)
    if on_call == 0:
        return Fidelity(1.0, 0.0, writes, refused)
    return Fidelity(covered / on_call, (shown_total - covered) / on_call, writes, refused)


def _shown_intervals(
    timeline: list[tuple[float, bool, float]], span: float
) -> list[tuple[float, float]]:
    intervals = []
    for index, (start, is_call, until) in enumerate(timeline):
        if not is_call:
            continue
        following = timeline[index + 1][0] if index + 1 < len(timeline) else math.inf
        end = min(following, until, span)
        if end > start:
            intervals.append((start, end))
    return intervals


def _overlap(first: list[tuple[float, float]], second: list[tuple[float, float]]) -> float:
    total = 0.0
    i = j = 0
    while i < len(first) and j < len(second):
        low = max(first[i][0], second[j][0])
        high = min(first[i][1], second[j][1])
        if high > low:
            total += high - low
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return total


# ---------------------------------------------------------------------------------- bridges


class FakeWriter:
    """The status writer's part, as the scheduler's contract asks it of any sender.

    Per person it keeps what it wants (a show, with when the call began, or a release) and
    what the fake Slack shows of ours, with its expiration; it submits the want with what is
    shown on every call start and end, and after every write that lands it submits the want
    again with what is shown then, before it reports OK. The scheduler keeps no copy of either.
    """

    def __init__(self, scheduler: StatusScheduler, slack: FakeSlack, latency: float) -> None:
        self._scheduler = scheduler
        self._slack = slack
        self._latency = latency
        self._wants: dict[str, Desire] = {}
        self._shown: dict[str, SlackStatus] = {}
        """Ours on the profile, with its expiration, as last written (until a release lands).
        Like the real writer's claim, it outlives the expiration: the scheduler judges that."""

    def call_started(self, key: str, busy_since: float) -> None:
        self._want(Desire(key, "show", CALL_STATUS, busy_since=busy_since))

    def call_ended(self, key: str) -> None:
        # Submitted even when nothing of ours is shown: the scheduler learns the call's length
        # from its show being replaced, and drops a release with nothing to undo by itself.
        self._want(Desire(key, "release", EMPTY_STATUS))

    def _want(self, want: Desire) -> None:
        self._wants[want.key] = want
        self._submit(want.key)

    def _submit(self, key: str) -> None:
        want = self._wants[key]
        self._scheduler.submit(replace(want, shown=self._shown.get(key)))

    async def send(self, desire: Desire, expiration: int) -> SendOutcome:
        key = desire.key
        want = self._wants.get(key)
        if want is None or replace(desire, shown=None) != want:
            # No longer wanted when its turn came: what holds now is submitted instead.
            if want is not None:
                self._submit(key)
            return SendOutcome.SKIPPED
        await asyncio.sleep(self._latency)
        outcome = self._slack.write(key, desire.status, expiration)
        if outcome.kind is not SendOutcome.OK.kind:
            return outcome
        if desire.action == "show":
            self._shown[key] = desire.status.with_expiration(expiration)
        else:
            self._shown.pop(key, None)
        current = self._wants[key]
        if current.action == "show" or desire.action == "show":
            # A show landed (the call goes on, or ended while it was written: the release now
            # has something to undo), or a release landed while a new call began.
            self._submit(key)
        return outcome


async def run_ours(
    workload: Workload, calls: dict[str, list[Call]] | None = None, **options: Any
) -> tuple[Fidelity, StatusScheduler]:
    """The real scheduler against the fake Slack; `options` go to `StatusScheduler`."""
    calls = calls if calls is not None else generate_calls(workload)
    loop = asyncio.get_running_loop()
    slack = FakeSlack(
        loop.time, workload.writes_per_window, workload.writes_per_profile, workload.window
    )
    scheduler = StatusScheduler(
        writes_per_window=workload.writes_per_window,
        writes_per_profile=workload.writes_per_profile,
        window=workload.window,
        clock=loop.time,
        wall_clock=lambda: EPOCH + loop.time(),
        rng=random.Random(workload.seed),
        **options,
    )
    writer = FakeWriter(scheduler, slack, workload.latency)
    runner = asyncio.create_task(scheduler.run(writer))
    on_call: set[str] = set()
    for at, key, telephony in phone_events(workload, calls):
        if at >= workload.span:
            break
        await _sleep_until(loop, at)
        # What the status writer submits: availability changes only. A ring is never written, and
        # a hold or a resume leaves the person on the call they were already shown on.
        if telephony in (CONNECTED, ON_HOLD) and key not in on_call:
            on_call.add(key)
            writer.call_started(key, EPOCH + at)
        elif telephony in (RINGING, NO_CALL) and key in on_call:
            on_call.discard(key)
            writer.call_ended(key)
    await _sleep_until(loop, workload.span)
    if runner.done():
        runner.result()  # the scheduler must never stop by itself: surface why it did
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    fidelity = measure(
        calls, slack.timelines, workload.span, writes=slack.writes, refused=slack.refused
    )
    return fidelity, scheduler


async def run_naive(workload: Workload, calls: dict[str, list[Call]] | None = None) -> Fidelity:
    """One write per event, in order, no expiration; a 429 is waited out and retried.

    Each event's telephony status is mapped as ours maps it (connected or on hold shows the call,
    a ring or a hang-up clears it), so naive shows no ring as a call: it loses only by its writes.
    """
    calls = calls if calls is not None else generate_calls(workload)
    loop = asyncio.get_running_loop()
    slack = FakeSlack(
        loop.time, workload.writes_per_window, workload.writes_per_profile, workload.window
    )
    queue: asyncio.Queue[tuple[str, SlackStatus]] = asyncio.Queue()

    async def bridge() -> None:
        while True:
            key, status = await queue.get()
            while True:
                await asyncio.sleep(workload.latency)
                outcome = slack.write(key, status, 0)
                if outcome.retry_after <= 0:
                    break
                await asyncio.sleep(outcome.retry_after)

    worker = asyncio.create_task(bridge())
    for at, key, telephony in phone_events(workload, calls):
        if at >= workload.span:
            break
        await _sleep_until(loop, at)
        queue.put_nowait((key, CALL_STATUS if telephony in (CONNECTED, ON_HOLD) else EMPTY_STATUS))
    await _sleep_until(loop, workload.span)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    return measure(
        calls, slack.timelines, workload.span, writes=slack.writes, refused=slack.refused
    )


def run_ideal(workload: Workload, calls: dict[str, list[Call]] | None = None) -> Fidelity:
    """The oracle: one write per call, expiring at its true end, longest remaining call first."""
    calls = calls if calls is not None else generate_calls(workload)
    starts = sorted((start, end, key) for key, person in calls.items() for start, end in person)
    timelines: dict[str, list[tuple[float, bool, float]]] = {}
    sent: deque[float] = deque()
    active: list[tuple[float, str]] = []
    next_start = 0
    writes = 0
    t = 0.0
    while t < workload.span:
        while next_start < len(starts) and starts[next_start][0] <= t:
            _, end, key = starts[next_start]
            active.append((end, key))
            next_start += 1
        active = [(end, key) for end, key in active if end > t]
        wait = _sliding_wait(sent, workload.writes_per_window, workload.window, t)
        if active and wait is None:
            best = max(range(len(active)), key=lambda index: active[index][0])
            end, key = active.pop(best)
            sent.append(t)
            writes += 1
            until = math.ceil(EPOCH + end) - EPOCH
            timelines.setdefault(key, []).append((t + workload.latency, True, until))
            continue
        upcoming = starts[next_start][0] if next_start < len(starts) else math.inf
        # A floor on the step: a window that frees a hair after t must not stall the loop.
        t = min(upcoming, t + max(wait, 1e-6)) if active and wait is not None else upcoming
    return measure(calls, timelines, workload.span, writes=writes)


async def _sleep_until(loop: asyncio.AbstractEventLoop, at: float) -> None:
    delay = at - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


# ---------------------------------------------------------------------------------- report


def compare(workload: Workload, **options: Any) -> dict[str, Fidelity]:
    calls = generate_calls(workload)
    ours, _ = run_virtual(run_ours(workload, calls, **options))
    naive = run_virtual(run_naive(workload, calls))
    ideal = run_ideal(workload, calls)
    return {"ours": ours, "naive": naive, "ideal": ideal}


def _table(rows: Iterable[tuple[int, str, Fidelity]]) -> str:
    lines = [
        f"{'people':>7} {'bridge':<6} {'coverage':>9} {'false busy':>11} {'error':>7} {'writes':>7}"
    ]
    for people, name, fidelity in rows:
        lines.append(
            f"{people:>7} {name:<6} {fidelity.coverage:>9.3f} {fidelity.false_busy:>11.3f}"
            f" {fidelity.error_ratio:>7.3f} {fidelity.writes:>7}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--people", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--span", type=float, default=3600.0)
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--ringing", action="store_true", help="RingCentral's events: rings, holds, missed rings"
    )
    args = parser.parse_args()
    rows = []
    for people in args.people:
        workload = Workload(
            people=people, span=args.span, sigma=args.sigma, seed=args.seed, ringing=args.ringing
        )
        for name, fidelity in compare(workload).items():
            rows.append((people, name, fidelity))
    print(_table(rows))


if __name__ == "__main__":
    main()
