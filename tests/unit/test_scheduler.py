"""The rate-budget scheduler, in virtual time: what gets written, when, and with what expiration."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.fidelity_model import EPOCH, Workload, compare, run_virtual
from bot.policy import EMPTY_STATUS, SlackStatus
from bot.slack.call_model import OPEN, CallLengthModel
from bot.slack.scheduler import Desire, Outcome, SendOutcome, StatusScheduler

CALL = SlackStatus("On a call", ":telephone_receiver:")
MEETING = SlackStatus("In a meeting", ":spiral_calendar_pad:")
LUNCH = SlackStatus("Lunch", ":sandwich:", EPOCH + 86_400)


@dataclass(frozen=True, slots=True)
class Write:
    at: float
    """Virtual loop seconds when the scheduler sent it."""
    key: str
    action: Literal["show", "release"]
    status: SlackStatus
    expiration: int
    outcome: Outcome


@dataclass
class Harness:
    """A scheduler in virtual time whose writes land in a list; outcomes can be scripted.

    It plays the status writer's part of the contract: it owns what each profile shows of ours,
    tells it in every desire, and submits the person's desire again after each write that lands.
    """

    options: dict[str, Any]
    latency: float = 0.05
    writes: list[Write] = field(default_factory=list)
    scripted: dict[str, deque[SendOutcome]] = field(default_factory=dict)
    """Per key, outcomes to return before plain OK ones ("*" for anyone)."""
    wants: dict[str, Desire] = field(default_factory=dict)
    shown: dict[str, SlackStatus] = field(default_factory=dict)
    """Ours on each profile, with its expiration, as the writes that landed left it."""
    scheduler: StatusScheduler = field(init=False)
    _runner: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        options = {"rng": random.Random(7), **self.options}
        self.scheduler = StatusScheduler(clock=loop.time, wall_clock=self.wall, **options)

    async def send(self, desire: Desire, expiration: int) -> SendOutcome:
        at = self.loop.time()
        await asyncio.sleep(self.latency)
        queue = self.scripted.get(desire.key) or self.scripted.get("*")
        outcome = queue.popleft() if queue else SendOutcome.OK
        status = desire.status
        self.writes.append(Write(at, desire.key, desire.action, status, expiration, outcome.kind))
        if outcome.kind is Outcome.OK:
            if desire.action == "show":
                self.shown[desire.key] = status.with_expiration(expiration)
            else:
                self.shown.pop(desire.key, None)
            self._tell(desire.key)
        return outcome

    def _tell(self, key: str) -> None:
        want = self.wants.get(key)
        if want is None:
            return
        if want.action == "release" and key not in self.shown:
            del self.wants[key]  # put back: nothing more to ask for
            return
        self.scheduler.submit(dataclasses.replace(want, shown=self.shown.get(key)))

    def wall(self) -> float:
        return EPOCH + self.loop.time()

    def script(self, key: str, *outcomes: SendOutcome) -> None:
        self.scripted.setdefault(key, deque()).extend(outcomes)

    def show(
        self,
        key: str,
        status: SlackStatus = CALL,
        *,
        age: float = 0.0,
        shown_until: int | None = None,
        **extra: Any,
    ) -> None:
        """The writer's show for a call that began `age` seconds ago; `shown_until` says the
        profile already shows it (as claims say after a restart)."""
        if shown_until is not None:
            self.shown[key] = status.with_expiration(shown_until)
        busy_since = self.wall() - age
        self.wants[key] = Desire(key, "show", status, busy_since=busy_since, **extra)
        self._submit(key)

    def release(
        self,
        key: str,
        restore: SlackStatus = EMPTY_STATUS,
        *,
        shown_until: int | None = None,
        **extra: Any,
    ) -> None:
        if shown_until is not None:
            self.shown[key] = CALL.with_expiration(shown_until)
        restore_is_empty = restore.is_empty()
        self.wants[key] = Desire(
            key, "release", restore, restore_is_empty=restore_is_empty, **extra
        )
        self._submit(key)

    def cancel(self, key: str) -> None:
        self.wants.pop(key, None)
        self.scheduler.cancel(key)

    def _submit(self, key: str) -> None:
        self.scheduler.submit(dataclasses.replace(self.wants[key], shown=self.shown.get(key)))

    async def until(self, seconds: float) -> None:
        """Let virtual time run to loop time `seconds`."""
        delay = seconds - self.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def ok(self, key: str | None = None) -> list[Write]:
        return [w for w in self.writes if w.outcome is Outcome.OK and key in (None, w.key)]

    async def __aenter__(self) -> Harness:
        self._runner = asyncio.create_task(self.scheduler.run(self))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        if self._runner.done():
            self._runner.result()  # a scheduler that stopped by itself is a bug
        self._runner.cancel()
        await asyncio.gather(self._runner, return_exceptions=True)


def scenario(body: Callable[[Harness], Awaitable[None]], **options: Any) -> Callable[[], Harness]:
    """Run `body` against a fresh harness in virtual time; return the harness to inspect."""

    async def main() -> Harness:
        async with Harness(options) as harness:
            await body(harness)
        return harness

    return lambda: run_virtual(main())


def shown_call_at(writes: Iterable[Write], key: str, at: float) -> bool:
    """Whether the profile shows "On a call" at loop time `at`, by the writes that succeeded."""
    showing = False
    for write in sorted(writes, key=lambda w: w.at):
        if write.key != key or write.outcome is not Outcome.OK or write.at > at:
            continue
        showing = write.status.same_as(CALL) and (write.expiration - EPOCH) > at
    return showing


# ---------------------------------------------------------------------- coalescing


def test_a_newer_desire_replaces_a_queued_one() -> None:
    async def body(h: Harness) -> None:
        h.show("T1:U1", CALL, age=10)
        h.show("T1:U1", MEETING, age=10)
        await h.until(30)

    harness = scenario(body)()
    assert [(w.action, w.status.text) for w in harness.writes] == [("show", "In a meeting")]


def test_a_release_of_a_show_never_written_writes_nothing() -> None:
    async def body(h: Harness) -> None:
        h.show("T1:U1", age=0)
        await h.until(1)
        h.release("T1:U1")
        await h.until(120)

    harness = scenario(body)()
    assert harness.writes == []
    assert harness.scheduler.stats.dropped_unwritten == 1


def test_a_show_already_on_the_profile_is_not_written_again() -> None:
    async def body(h: Harness) -> None:
        h.show("T1:U1", age=10)
        await h.until(5)
        h.show("T1:U1", age=15)  # the writer resubmits: the same call
        h.show("T1:U2", age=100, shown_until=int(h.wall()) + 3000)  # after a restart
        await h.until(60)

    harness = scenario(body)()
    assert [w.key for w in harness.writes] == ["T1:U1"]
    # Only the show that found its status already on the profile counts: the same call
    # submitted again is not a new show.
    assert harness.scheduler.stats.dropped_equal == 1


def test_a_release_after_a_restart_undoes_what_the_claims_say_is_shown() -> None:
    async def body(h: Harness) -> None:
        h.release("T1:U1", shown_until=int(h.wall()) + 3000)
        h.release("T1:U2")  # nothing of ours on that profile
        await h.until(30)

    harness = scenario(body)()
    assert [(w.key, w.action) for w in harness.writes] == [("T1:U1", "release")]


def test_cancel_forgets_queued_work() -> None:
    async def body(h: Harness) -> None:
        h.show("T1:U1", age=0)
        await h.until(1)
        h.cancel("T1:U1")
        await h.until(30)

    harness = scenario(body)()
    assert harness.writes == []


# ---------------------------------------------------------------------- debounce


def test_a_one_second_call_never_writes() -> None:
    async def body(h: Harness) -> None:
        await h.until(10)
        h.show("T1:U1", age=0)
        await h.until(11)
        h.release("T1:U1")
        await h.until(200)

    harness = scenario(body, call_debounce=2.0)()
    assert harness.writes == []


def test_a_call_is_shown_once_it_has_lasted_the_debounce() -> None:
    async def body(h: Harness) -> None:
        await h.until(10)
        h.show("T1:U1", age=0)
        await h.until(40)

    harness = scenario(body, call_debounce=2.0)()
    (write,) = harness.writes
    assert 12.0 <= write.at < 12.5


# ---------------------------------------------------------------------- budget


@dataclass(frozen=True)
class Event:
    delay: float
    person: int
    action: Literal["show", "meeting", "release"]
    age: float


events = st.lists(
    st.builds(
        Event,
        st.floats(0, 8),
        st.integers(0, 7),
        st.sampled_from(["show", "meeting", "release"]),
        st.sampled_from([0.0, 1.0, 5.0, 120.0]),
    ),
    max_size=60,
)


def _most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    most = 0
    start = 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        most = max(most, end - start + 1)
    return most


@given(events, st.sampled_from([None, 3]), st.booleans())
@settings(max_examples=40, deadline=None)
def test_the_budget_is_never_exceeded(
    stream: list[Event], distinct: int | None, throttle: bool
) -> None:
    window = 10.0

    async def body(h: Harness) -> None:
        if throttle:
            h.script("*", SendOutcome.rate_limited(3), SendOutcome.RETRY)
        for event in stream:
            await asyncio.sleep(event.delay)
            key = f"T1:U{event.person}"
            if event.action == "release":
                h.release(key)
            else:
                h.show(key, CALL if event.action == "show" else MEETING, age=event.age)
        await h.until(h.loop.time() + 120)

    harness = scenario(
        body,
        writes_per_window=4,
        writes_per_profile=2,
        distinct_profiles=distinct,
        window=window,
        burst=4,
        status_ttl=30.0,
        extend_lead=5.0,
        min_horizon=5.0,
        base_backoff=0.5,
    )()
    sent = harness.writes
    assert _most_in_any_window([w.at for w in sent], window) <= 4
    for key in {w.key for w in sent}:
        assert _most_in_any_window([w.at for w in sent if w.key == key], window) <= 2
    if distinct is not None:
        for write in sent:
            recent = {w.key for w in sent if write.at - window < w.at <= write.at}
            assert len(recent) <= distinct


def test_one_busy_profile_cannot_take_more_than_its_share() -> None:
    async def body(h: Harness) -> None:
        for second in range(60):
            # Someone whose phone flips between a call and a meeting every second.
            h.show("T1:U1", CALL if second % 2 else MEETING, age=10 + second)
            if second == 30:
                h.show("T1:U2", age=10)
            await asyncio.sleep(1)

    harness = scenario(body, writes_per_profile=3, window=60.0)()
    flapping = [w for w in harness.writes if w.key == "T1:U1"]
    assert len(flapping) == 3
    assert [w.key for w in harness.writes].count("T1:U2") == 1


def test_a_429_pauses_every_write_for_its_retry_after_then_resumes() -> None:
    async def body(h: Harness) -> None:
        h.script("T1:U1", SendOutcome.rate_limited(20))
        h.show("T1:U1", age=10)
        await h.until(1)
        h.show("T1:U2", age=10)
        await h.until(60)

    harness = scenario(body)()
    first, *rest = harness.writes
    assert first.outcome is Outcome.RATE_LIMITED
    assert all(w.at >= first.at + 20 for w in rest)
    assert sorted(w.key for w in harness.ok()) == ["T1:U1", "T1:U2"]
    assert harness.scheduler.stats.rate_limited == 1


def test_a_profile_429_pauses_only_that_profile() -> None:
    async def body(h: Harness) -> None:
        h.script("T1:U1", SendOutcome.rate_limited(20, "profile"))
        h.show("T1:U1", age=10)
        await h.until(1)
        h.show("T1:U2", age=10)
        await h.until(60)

    harness = scenario(body)()
    assert harness.ok("T1:U2")[0].at < 2
    assert harness.ok("T1:U1")[0].at >= 20


def test_server_errors_retry_with_bounded_jittered_backoff_then_give_up() -> None:
    async def body(h: Harness) -> None:
        h.script("T1:U1", *[SendOutcome.RETRY] * 10)
        h.show("T1:U1", age=10)
        await h.until(300)

    harness = scenario(body, base_backoff=1.0, max_backoff=8.0, max_attempts=6)()
    attempts = [w.at for w in harness.writes]
    assert len(attempts) == 6
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    nominal = [1, 2, 4, 8, 8]
    for gap, step in zip(gaps, nominal, strict=True):
        # Half to all of the nominal delay, plus the write's own latency.
        assert step * 0.5 <= gap <= step + 0.2
    assert harness.scheduler.stats.gave_up == 1
    assert harness.scheduler.pending() == 0


def test_a_write_that_failed_once_is_written_exactly_once_afterwards() -> None:
    async def body(h: Harness) -> None:
        h.script("T1:U1", SendOutcome.RETRY)
        h.show("T1:U1", age=10)
        await h.until(120)

    harness = scenario(body)()
    assert [w.outcome for w in harness.writes] == [Outcome.RETRY, Outcome.OK]


def test_gone_drops_the_persons_work() -> None:
    async def body(h: Harness) -> None:
        h.script("T1:U1", SendOutcome.GONE)
        h.show("T1:U1", age=10)
        await h.until(400)

    harness = scenario(body, status_ttl=60.0)()
    assert len(harness.writes) == 1
    assert harness.scheduler.stats.gone == 1


# ---------------------------------------------------------------------- expirations


def test_a_long_call_is_extended_before_its_status_expires() -> None:
    async def body(h: Harness) -> None:
        h.show("T1:U1", age=0)
        await h.until(400)
        h.release("T1:U1")
        await h.until(500)

    harness = scenario(body, status_ttl=120.0, extend_lead=20.0)()
    shows = [w for w in harness.writes if w.action == "show"]
    assert len(shows) >= 4
    for earlier, later in itertools.pairwise(shows):
        assert later.at < earlier.expiration - EPOCH, "the status lapsed mid-call"
        assert later.expiration > earlier.expiration
    assert all(shown_call_at(harness.writes, "T1:U1", t) for t in range(3, 400))
    assert harness.writes[-1].action == "release"
    assert not shown_call_at(harness.writes, "T1:U1", 410)


def test_a_release_is_skipped_when_our_expiration_clears_an_empty_status_anyway() -> None:
    async def body(h: Harness) -> None:
        h.show("T1:U1", age=0)
        h.show("T1:U2", age=0, restore_is_empty=False)
        await h.until(26)
        h.release("T1:U1")
        h.release("T1:U2", LUNCH)  # expiration cannot put Lunch back: a write must
        await h.until(120)

    harness = scenario(body, status_ttl=30.0, extend_lead=3.0, release_grace=5.0, gap_hold=2.0)()
    assert [w.action for w in harness.ok("T1:U1")] == ["show"]
    assert [w.action for w in harness.ok("T1:U2")] == ["show", "release"]
    assert harness.ok("T1:U2")[-1].status == LUNCH
    assert harness.scheduler.stats.expired_by_ttl == 1


def test_back_to_back_calls_keep_the_status_without_a_release() -> None:
    async def body(h: Harness) -> None:
        h.show("T1:U1", age=0)
        await h.until(60)
        h.release("T1:U1")
        await h.until(61.5)
        h.show("T1:U1", age=0)  # the next call, 1.5 s later
        await h.until(120)
        h.release("T1:U1")
        await h.until(200)

    harness = scenario(body, gap_hold=2.0)()
    assert [w.action for w in harness.writes] == ["show", "release"]
    assert harness.writes[-1].at >= 120
    assert harness.scheduler.stats.bridged_gaps == 1


def test_a_light_load_shows_calls_until_released() -> None:
    async def body(h: Harness) -> None:
        h.show("T1:U1", age=0)
        await h.until(30)
        assert h.scheduler.price() == 0
        h.release("T1:U1")
        await h.scheduler.drain()

    harness = scenario(body, status_ttl=3600.0)()
    show, release = harness.writes
    assert show.expiration - EPOCH - show.at >= 3599
    assert release.at < 33


# ---------------------------------------------------------------------- overload


def test_under_overload_long_running_calls_are_written_before_fresh_ones() -> None:
    old = [f"T1:OLD{i}" for i in range(4)]
    fresh = [f"T1:NEW{i}" for i in range(4)]

    async def body(h: Harness) -> None:
        for index in range(4):
            h.show(fresh[index], age=3)
            h.show(old[index], age=600)
        await h.until(30)
        assert h.scheduler.binding()
        await h.until(250)

    harness = scenario(body, writes_per_window=2, burst=2, window=60.0)()
    order = [w.key for w in harness.writes]
    assert order[:4] == [key for key in order if key in old]
    assert set(order[:4]) == set(old)


def test_the_price_of_a_write_rises_with_the_load() -> None:
    async def body(h: Harness) -> None:
        rng = random.Random(3)
        for index in range(400):
            await asyncio.sleep(rng.expovariate(1 / 1.0))
            h.show(f"T1:U{index}", age=0)
        assert h.scheduler.price() > 50

    scenario(body, writes_per_window=10)()


# ---------------------------------------------------------------------- the call-length model


def test_the_model_learns_typical_call_lengths() -> None:
    model = CallLengthModel()
    fresh_prior = model.median_remaining(0)
    assert 120 < fresh_prior < 170  # lognormal, mean 4 min, sigma 1: median about 146 s
    rng = random.Random(11)
    for _ in range(500):
        model.observe(rng.lognormvariate(math.log(30), 0.3))
    assert 25 < model.median_remaining(0) < 35
    assert model.survival(0, 60) < 0.05
    assert model.remaining_quantile(0, 0.9) > model.median_remaining(0)


def test_a_call_that_has_lasted_is_worth_more_than_a_fresh_one() -> None:
    model = CallLengthModel()
    assert model.write_value(600) > model.write_value(60)
    assert model.median_remaining(1200) > model.median_remaining(60)
    assert model.covered(600, 300) > model.covered(60, 300)


def test_the_plan_keeps_heavy_tailed_calls_open_and_ends_regular_ones_by_expiration() -> None:
    heavy = CallLengthModel(prior_sigma=1.0, prior_weight=10_000)
    regular = CallLengthModel(prior_sigma=0.3, prior_weight=10_000)
    assert heavy.plan_horizon(2, 0) == OPEN
    assert regular.plan_horizon(2, 0) == OPEN  # writes are free: release exactly at the end
    assert heavy.plan_horizon(2, 100) == OPEN
    assert regular.plan_horizon(2, 200) < 600
    assert heavy.writes_per_call(0) == pytest.approx(2.0)
    assert regular.writes_per_call(200) < 1.2


# ---------------------------------------------------------------------- fidelity


def test_ours_beats_the_naive_bridge_when_the_budget_binds() -> None:
    # 400 people with 10 writes a minute make the same overload as 2,000 people with Slack's
    # 50 (bench/fidelity_model.py runs the full size in seconds).
    results = compare(Workload(people=400, writes_per_window=10, seed=2))
    ours, naive, ideal = results["ours"], results["naive"], results["ideal"]
    print(
        f"\noverload: error ratio ours {ours.error_ratio:.3f}, naive {naive.error_ratio:.3f},"
        f" ideal {ideal.error_ratio:.3f} (coverage {ours.coverage:.3f} / {naive.coverage:.3f})"
    )
    assert ours.error_ratio < naive.error_ratio
    assert ours.error_ratio < 0.6
    assert ideal.error_ratio <= ours.error_ratio
    assert ours.refused == 0


def test_a_light_load_is_mirrored_closely() -> None:
    results = compare(Workload(people=100, writes_per_window=10, seed=2))
    ours, naive = results["ours"], results["naive"]
    print(f"\nlight load: error ratio ours {ours.error_ratio:.3f}, naive {naive.error_ratio:.3f}")
    assert ours.error_ratio <= 0.05
    assert ours.refused == 0
