"""The presence pipeline against the RingCentral simulator, through the real SDK and sockets."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import PresencePipeline
from bot.config import Settings
from bot.coordinator import PresenceMemory
from bot.presence import Availability
from bot.ringcentral.subscriber import LinkState
from bot.roster import PersonChange, Roster
from bot.sim.company import Company, build_company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral import RingCentralSimulator
from bot.store import Store
from bot.supervisor import Supervisor
from tests.helpers import ControlClient, wait_until

pytestmark = pytest.mark.asyncio


@dataclass
class Recorder:
    """A consumer under the hub that remembers what it was told, as the Slack side is told."""

    changes: list[PersonChange] = field(default_factory=list)

    async def on_person_change(self, change: PersonChange) -> None:
        self.changes.append(change)

    async def on_resync(self) -> None:
        pass

    def of(self, extension_id: str) -> list[tuple[Availability | None, Availability | None]]:
        """Changes of one extension after it was first seen (the snapshot introduces everyone)."""
        return [
            (c.old, c.new)
            for c in self.changes
            if c.extension_id == extension_id and c.old is not None
        ]


@dataclass(frozen=True)
class _Link:
    user_id: str
    extension_id: str


@dataclass
class EveryoneLinked:
    """Links every extension of the company to a Slack user of its own, as the mapping would."""

    company: Company

    async def links(self, team_id: str) -> list[_Link]:
        return [
            _Link(f"U{p.extension_id}", str(p.extension_id))
            for p in self.company.rc_users
            if p.extension_id is not None
        ]


@dataclass
class Harness:
    company: Company
    sim: RingCentralSimulator
    control: ControlClient
    pipeline: PresencePipeline
    supervisor: Supervisor
    recorder: Recorder
    scale: TimeScale

    @property
    def subscriber_state(self) -> LinkState:
        return self.pipeline.subscriber.health.state

    def person(self, index: int) -> str:
        """The index-th enabled user who starts out available (the simulator seeds some as busy)."""
        roster = self.pipeline.roster
        available = [
            str(p.extension_id)
            for p in self.company.rc_users
            if p.extension_status == "Enabled"
            and (known := roster.presence(str(p.extension_id))) is not None
            and known.availability is Availability.AVAILABLE
        ]
        return available[index]

    async def sim_presence(self) -> dict[str, dict[str, Any]]:
        rows = await self.control.get("extensions")
        return {str(row["id"]): row["presence"] for row in rows}

    async def settled(self) -> None:
        """Connected and the first snapshot applied."""
        await wait_until(
            lambda: (
                self.subscriber_state is LinkState.CONNECTED
                and self.pipeline.coordinator.first_snapshot.is_set()
            ),
            message="subscriber connected and snapshot applied",
        )


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def capture_logs() -> Iterator[list[logging.LogRecord]]:
    """Every record any logger emits while the block runs, at DEBUG and above."""
    handler = _ListHandler()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def assert_no_credentials_in(records: list[logging.LogRecord], secrets: set[str]) -> None:
    """No client secret, JWT, access, refresh or WebSocket token in any log line of the run.

    The records as our code and the SDKs made them, tracebacks included, before any handler's
    redaction: the pipeline should not hand a credential to the logs in the first place.
    """
    assert records, "the pipeline logged nothing at all"
    plain = logging.Formatter()
    text = "\n".join(plain.format(record) for record in records)
    leaked = [secret for secret in secrets if secret in text]
    assert not leaked, f"{len(leaked)} credentials reached the logs"
    assert "access_token=" not in text.replace("access_token=[redacted]", "")


def settings_for(sim: RingCentralSimulator, scale: TimeScale, **extra: str) -> Settings:
    return Settings.from_env(
        {
            "RC_SERVER_URL": sim.url,
            "RC_CLIENT_ID": sim.client_id,
            "RC_CLIENT_SECRET": sim.client_secret,
            "RC_JWT": sim.jwt,
            "TIME_SCALE": f"{scale.factor:g}",
            **extra,
        },
        env_file=None,
    )


@contextlib.asynccontextmanager
async def start_harness(
    users: int = 20,
    scale: float = 60.0,
    sim_options: dict[str, Any] | None = None,
    memory: PresenceMemory | None = None,
    sim: RingCentralSimulator | None = None,
    **extra: str,
) -> AsyncIterator[Harness]:
    company = build_company(users, seed=7)
    time_scale = TimeScale(scale)
    own_sim = sim is None
    if sim is None:
        sim = RingCentralSimulator(company, time_scale=time_scale, **(sim_options or {}))
        await sim.start()
    recorder = Recorder()
    supervisor = Supervisor(backoff_base=0.05, backoff_cap=0.5)
    async with aiohttp.ClientSession() as session:
        pipeline = PresencePipeline.build(
            settings_for(sim, time_scale, **extra),
            team_id="T1",
            roster=Roster(),
            links=EveryoneLinked(company),
            consumers=[recorder],
            memory=memory,
            reconnect_backoff=0.05,  # reconnect quickly; the sim compresses time
        )
        harness = Harness(
            company, sim, ControlClient(sim.url, session), pipeline, supervisor, recorder,
            time_scale,
        )  # fmt: skip
        with capture_logs() as records:
            try:
                await pipeline.start(supervisor)
                await harness.settled()
                yield harness
            finally:
                await supervisor.stop()
                if own_sim:
                    await sim.stop()
        assert_no_credentials_in(records, sim.issued_secrets())


@pytest.fixture
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """The pipeline against the simulator's defaults, or the switches a test parametrises."""
    switches: dict[str, Any] = getattr(request, "param", {})
    async with start_harness(sim_options=switches) as h:
        yield h


# RingCentral's guide shows full notification bodies, its spec allows partial ones (reference
# §4.2): what the bot makes of events must not depend on which it gets.
BOTH_BODIES = pytest.mark.parametrize(
    "harness",
    [{"presence_bodies": "full"}, {"presence_bodies": "partial"}],
    ids=["full-bodies", "partial-bodies"],
    indirect=True,
)


async def call(h: Harness, extension_id: str, state: str) -> None:
    await h.control.post(f"extensions/{extension_id}/call", {"state": state})


async def test_bootstrap_of_5000_users_reads_pages_not_extensions() -> None:
    async with start_harness(users=5000, scale=60.0) as h:
        stats = await h.control.get("stats")
        requests = stats["requests"]
        list_pages = requests.get("GET /restapi/v1.0/account/~/extension", 0)
        presence_pages = requests.get("GET /restapi/v1.0/account/~/presence", 0)
        assert 1 <= list_pages <= 5
        assert 1 <= presence_pages <= 5
        per_extension = [k for k in requests if "{id}" in k]
        assert per_extension == []
        assert len(h.pipeline.directory) >= 5000
        assert h.pipeline.roster.extensions_known >= 5000


@BOTH_BODIES
async def test_a_call_yields_exactly_the_transitions_the_policy_needs(harness: Harness) -> None:
    alice = harness.person(3)
    for state in ("ringing", "connected", "hold", "connected", "ended"):
        await call(harness, alice, state)
    await wait_until(
        lambda: harness.recorder.of(alice)[-1:] == [(Availability.ON_CALL, Availability.AVAILABLE)],
        message="the call to end",
    )
    assert harness.recorder.of(alice) == [
        (Availability.AVAILABLE, Availability.RINGING),
        (Availability.RINGING, Availability.ON_CALL),
        (Availability.ON_CALL, Availability.AVAILABLE),
    ]


@BOTH_BODIES
async def test_presence_fields_reach_the_coordinator(harness: Harness) -> None:
    bob = harness.person(4)
    await harness.control.post(f"extensions/{bob}/presence", {"dndStatus": "DoNotAcceptAnyCalls"})
    await wait_until(
        lambda: harness.recorder.of(bob) == [(Availability.AVAILABLE, Availability.DND)]
    )
    await harness.control.post(f"extensions/{bob}/presence", {"meetingStatus": "Connected"})
    await wait_until(
        lambda: harness.recorder.of(bob)[-1] == (Availability.DND, Availability.IN_MEETING)
    )
    # A partial body now says only that the meeting ended: the DND it does not repeat still holds.
    await harness.control.post(f"extensions/{bob}/presence", {"meetingStatus": "Disconnected"})
    await wait_until(
        lambda: harness.recorder.of(bob)[-1] == (Availability.IN_MEETING, Availability.DND)
    )
    await harness.control.post(f"extensions/{bob}/presence", {"allowSeeMyPresence": False})
    await wait_until(lambda: harness.recorder.of(bob)[-1][1] is Availability.HIDDEN)


@BOTH_BODIES
@pytest.mark.parametrize("error", [None, "WSG-903"])
async def test_drop_recovers_with_wsc_and_loses_nothing(
    harness: Harness, error: str | None
) -> None:
    carol, dave = harness.person(5), harness.person(6)
    await call(harness, carol, "connected")
    await wait_until(lambda: bool(harness.recorder.of(carol)), message="carol on a call")
    connections = harness.pipeline.subscriber.health.connections
    # Stop the bot from reconnecting for a moment, so changes happen while it is away.
    await harness.control.post(
        "faults", {"path": "/restapi/oauth/wstoken", "status": 503, "count": 1}
    )
    await harness.control.post("ws/drop", {"error": error} if error else {})
    await call(harness, carol, "ended")
    await call(harness, dave, "ringing")
    await call(harness, dave, "connected")
    await wait_until(
        lambda: harness.recorder.of(dave)[-1:] == [(Availability.RINGING, Availability.ON_CALL)],
        message="the missed changes to be replayed",
    )
    health = harness.pipeline.subscriber.health
    assert health.recoveries == 1
    assert health.connections == connections + 1
    assert harness.recorder.of(carol) == [
        (Availability.AVAILABLE, Availability.ON_CALL),
        (Availability.ON_CALL, Availability.AVAILABLE),
    ]
    assert harness.recorder.of(dave) == [
        (Availability.AVAILABLE, Availability.RINGING),
        (Availability.RINGING, Availability.ON_CALL),
    ]
    # A clean recovery needs no snapshot.
    assert harness.pipeline.coordinator.stats.snapshots == 1


@BOTH_BODIES
async def test_a_change_during_a_call_keeps_the_call_and_its_start(harness: Harness) -> None:
    # A full body repeats telephonyStatus with every change, a partial one leaves it out: either
    # way the call goes on, from the same start, until it ends.
    alice = harness.person(1)
    roster = harness.pipeline.roster
    await call(harness, alice, "connected")
    await wait_until(
        lambda: harness.recorder.of(alice) == [(Availability.AVAILABLE, Availability.ON_CALL)]
    )
    on_call = roster.presence(alice)
    assert on_call is not None
    assert on_call.on_call_since is not None

    await harness.control.post(f"extensions/{alice}/presence", {"dndStatus": "DoNotAcceptAnyCalls"})
    await harness.control.post(f"extensions/{alice}/presence", {"meetingStatus": "Connected"})
    await wait_until(
        lambda: (
            (known := roster.presence(alice)) is not None
            and known.meeting_status is not None
            and known.meeting_status.value == "Connected"
        ),
        message="the meeting to reach the bot",
    )
    during = roster.presence(alice)
    assert during is not None
    assert (during.availability, during.on_call_since) == (
        Availability.ON_CALL,
        on_call.on_call_since,
    )

    await call(harness, alice, "ended")
    await wait_until(lambda: len(harness.recorder.of(alice)) == 2, message="the call to end")
    assert harness.recorder.of(alice) == [
        (Availability.AVAILABLE, Availability.ON_CALL),
        (Availability.ON_CALL, Availability.IN_MEETING),
    ]


@pytest.mark.parametrize("bodies", ["full", "partial"])
async def test_a_replay_overtaken_by_live_events_never_moves_anyone_back(bodies: str) -> None:
    # Half a second (30 simulated) between the recovery's ConnectionDetails and the replay, and
    # live events meanwhile: the replay arrives after newer news, as out-of-order delivery does.
    switches = {"replay_delay": 30, "presence_bodies": bodies}
    async with start_harness(sim_options=switches) as h:
        carol, dave = h.person(5), h.person(6)
        await call(h, carol, "connected")
        await wait_until(lambda: bool(h.recorder.of(carol)), message="carol on a call")
        subscriber, feed = h.pipeline.subscriber, h.pipeline.feed
        await h.control.post("ws/drop")
        # Called directly, so all three happen before the bot can reconnect: they are missed.
        h.sim.call(int(carol), "ended")
        h.sim.call(int(dave), "ringing")
        h.sim.call(int(dave), "connected")
        await wait_until(lambda: subscriber.health.recoveries == 1, message="the recovery")
        received = feed.stats.notifications
        h.sim.call(int(dave), "ended")
        assert h.sim.stats()["notifications_replayed"] == 0, "the replay came too early to test"

        await wait_until(
            lambda: feed.stats.notifications == received + 4, message="the live event and replay"
        )
        assert h.sim.stats()["notifications_replayed"] == 3
        # Dave's call was over before the bot heard it had begun: he never looks busy.
        assert h.recorder.of(dave) == []
        known = h.pipeline.roster.presence(dave)
        assert known is not None
        assert known.availability is Availability.AVAILABLE
        assert h.recorder.of(carol) == [
            (Availability.AVAILABLE, Availability.ON_CALL),
            (Availability.ON_CALL, Availability.AVAILABLE),
        ]
        assert h.pipeline.coordinator.stats.snapshots == 1


@pytest.mark.parametrize(
    "harness", [{"ws_token_single_use": False, "ws_token_ttl": 600}], indirect=True
)
async def test_reusable_ws_tokens_spare_a_token_request_on_reconnect(harness: Harness) -> None:
    # RingCentral's own library reuses a token for 80 % of its life; where the gateway allows
    # that, the bot's reconnect costs no request in the Auth group (5 a minute).
    erin = harness.person(7)
    await harness.control.post("ws/drop")
    await call(harness, erin, "connected")
    await wait_until(lambda: bool(harness.recorder.of(erin)), message="erin's call")
    stats = await harness.control.get("stats")
    health = harness.pipeline.subscriber.health
    assert (health.recoveries, health.connections) == (1, 2)
    assert stats["requests"]["POST /restapi/oauth/wstoken"] == 1
    assert (health.kept_tokens_offered, health.kept_tokens_refused) == (1, 0)


@pytest.mark.parametrize("harness", [{"ws_token_ttl": 600}], indirect=True)
async def test_single_use_ws_tokens_cost_one_refused_attempt_and_nothing_else(
    harness: Harness,
) -> None:
    # The guide's reading: the gateway takes a token once. The kept one is refused, a new one
    # is fetched at once, and the session is still recovered with nothing missed.
    erin = harness.person(7)
    await harness.control.post("ws/drop")
    await call(harness, erin, "connected")
    await wait_until(lambda: bool(harness.recorder.of(erin)), message="erin's call")
    stats = await harness.control.get("stats")
    health = harness.pipeline.subscriber.health
    assert (health.recoveries, health.connections) == (1, 2)
    assert stats["requests"]["POST /restapi/oauth/wstoken"] == 2
    assert (health.kept_tokens_offered, health.kept_tokens_refused) == (1, 1)
    assert (stats["logins"], stats["rate_limited"]) == (1, 0)


async def _assert_state_matches_sim(h: Harness) -> None:
    async def matches() -> bool:
        sim = await h.sim_presence()
        for extension_id, presence in sim.items():
            known = h.pipeline.roster.presence(extension_id)
            if known is None:
                return False
            if presence.get("telephonyStatus") and (
                known.telephony_status is None
                or known.telephony_status.value != presence["telephonyStatus"]
            ):
                return False
        return True

    await wait_until(matches, timeout=15, message="the bot's presence to equal the simulator's")


async def test_revoked_session_logs_in_with_the_jwt_and_repairs_state(harness: Harness) -> None:
    erin = harness.person(7)
    await harness.control.post("tokens/revoke")
    await harness.control.post("ws/drop")
    await call(harness, erin, "connected")
    await wait_until(lambda: harness.pipeline.subscriber.health.failed_recoveries == 1)
    assert harness.pipeline.client.stats.logins == 2  # the refresh token died with the session
    await wait_until(lambda: harness.pipeline.coordinator.stats.snapshots >= 2)
    await _assert_state_matches_sim(harness)
    assert harness.recorder.of(erin)[-1] == (Availability.AVAILABLE, Availability.ON_CALL)


async def test_recovery_with_a_new_oauth_session_fails_then_resubscribes_and_snapshots(
    harness: Harness,
) -> None:
    leo = harness.person(8)
    # The refresh is refused, so the bot logs in with its JWT: a new OAuth session, whose
    # WebSocket cannot recover the old one's context (WSG-1003).
    await harness.control.post("tokens/expire")
    await harness.control.post(
        "faults", {"path": "/restapi/oauth/token", "status": 400, "count": 1}
    )
    await harness.control.post("ws/drop")
    await call(harness, leo, "connected")
    await wait_until(lambda: harness.pipeline.subscriber.health.failed_recoveries == 1)
    assert harness.pipeline.subscriber.health.last_recovery_error == "WSG-1003"
    assert harness.pipeline.client.stats.logins == 2
    await wait_until(lambda: harness.pipeline.coordinator.stats.snapshots >= 2)
    await _assert_state_matches_sim(harness)
    assert harness.recorder.of(leo)[-1] == (Availability.AVAILABLE, Availability.ON_CALL)


async def test_recovery_the_gateway_calls_too_late_fails_then_resubscribes_and_snapshots() -> None:
    # The simulator's clock jumps past its recovery window while ours does not, so the bot tries
    # to recover and the gateway answers Failed / WSG-1005.
    offset = [0.0]
    sim_clock = lambda: time.monotonic() + offset[0]  # noqa: E731
    async with start_harness(sim_options={"clock": sim_clock}) as h:
        kate = h.person(1)
        await h.control.post(
            "faults", {"path": "/restapi/oauth/wstoken", "status": 503, "count": 1}
        )
        await h.control.post("ws/drop")
        offset[0] = h.scale.seconds(400)
        await call(h, kate, "connected")
        await wait_until(lambda: h.pipeline.subscriber.health.failed_recoveries == 1)
        assert h.pipeline.subscriber.health.last_recovery_error == "WSG-1005"
        await wait_until(lambda: h.pipeline.coordinator.stats.snapshots >= 2)
        await _assert_state_matches_sim(h)
        assert h.recorder.of(kate)[-1] == (Availability.AVAILABLE, Availability.ON_CALL)


@pytest.mark.slow
async def test_reconnect_after_the_recovery_window_starts_a_new_session() -> None:
    async with start_harness(scale=600.0) as h:
        frank = h.person(8)
        before = h.pipeline.subscriber.health.connections
        # Keep the bot out longer than the (scaled) 180 s recovery window.
        await h.control.post(
            "faults", {"path": "/restapi/oauth/wstoken", "status": 503, "count": 12}
        )
        await h.control.post("ws/drop")
        await call(h, frank, "connected")
        await wait_until(
            lambda: (
                h.pipeline.subscriber.health.connections > before
                and h.subscriber_state is LinkState.CONNECTED
            ),
            timeout=30,
            message="a new session",
        )
        await wait_until(lambda: h.pipeline.coordinator.stats.snapshots >= 2)
        await _assert_state_matches_sim(h)
        assert h.recorder.of(frank)[-1] == (Availability.AVAILABLE, Availability.ON_CALL)


@pytest.mark.slow
async def test_heartbeats_keep_an_idle_connection_open() -> None:
    async with start_harness(scale=3600.0) as h:
        subscriber = h.pipeline.subscriber
        before = h.sim.stats()["sockets_opened"]
        # Two scaled hours are four times the gateway's 30-minute idle timeout; the heartbeat
        # interval is at most a third of it, so 12 heartbeats mean two hours have passed.
        await wait_until(lambda: subscriber.health.heartbeats_sent >= 12, timeout=30)
        assert subscriber.health.connections == 1
        assert h.sim.stats()["sockets_opened"] == before
        assert subscriber.health.state is LinkState.CONNECTED


async def test_access_token_expiry_is_refreshed_without_a_gap(harness: Harness) -> None:
    grace = harness.person(9)
    refreshes = harness.pipeline.client.stats.refreshes
    await harness.control.post("tokens/expire")
    await harness.control.post("ws/drop")
    await call(harness, grace, "connected")
    await wait_until(lambda: bool(harness.recorder.of(grace)), message="delivery after expiry")
    assert harness.pipeline.client.stats.refreshes > refreshes or (
        harness.pipeline.client.stats.logins >= 1
    )
    assert harness.pipeline.subscriber.health.recoveries >= 1


async def test_tokens_are_refreshed_before_they_expire() -> None:
    # At this scale an access token lives one second: the bot must refresh early, every time.
    async with start_harness(scale=3600.0) as h:
        client = h.pipeline.client
        await wait_until(lambda: client.stats.refreshes >= 3, message="three refreshes")
        await h.pipeline.coordinator.snapshot()
        judy = h.person(2)
        await call(h, judy, "connected")
        await wait_until(lambda: bool(h.recorder.of(judy)), message="delivery across refreshes")
        assert client.stats.unauthorized == 0
        assert client.stats.logins == 1


async def test_snapshot_429_waits_retry_after_and_sends_nothing_meanwhile(
    harness: Harness,
) -> None:
    await harness.control.post("stats/reset")
    await harness.control.post(
        "faults",
        {"path": "/restapi/v1.0/account/~/presence", "status": 429, "count": 1, "retry_after": 1},
    )
    await harness.pipeline.coordinator.snapshot()
    stats = await harness.control.get("stats")
    assert stats["requests"]["GET /restapi/v1.0/account/~/presence"] == 2
    assert harness.pipeline.client.stats.rate_limited == 1


@pytest.mark.parametrize(
    "frame",
    ["not-json", "{}", "[]", "[1, 2]", '[{"type": "Mystery"}, {}]',
     '[{"type": "ServerNotification"}]',
     '[{"type": "ServerNotification"}, {"body": {"extensionId": "x", "telephonyStatus": "Nope"}}]'],
)  # fmt: skip
async def test_malformed_frames_are_skipped_and_delivery_continues(
    harness: Harness, frame: str
) -> None:
    ivan = harness.person(11)
    assert await harness.control.post("ws/send", {"frame": frame}) == {"sent": 1}
    await call(harness, ivan, "connected")
    await wait_until(lambda: bool(harness.recorder.of(ivan)), message="ivan's call")
    assert harness.recorder.of(ivan)[-1][1] is Availability.ON_CALL, harness.recorder.changes
    subscriber = harness.pipeline.subscriber
    assert subscriber.health.connections == 1
    assert subscriber.health.skipped_frames + harness.pipeline.feed.stats.malformed >= 1


async def test_directory_follows_extension_list_notifications(harness: Harness) -> None:
    directory = harness.pipeline.directory
    before = len(directory)
    added = await harness.control.post(
        "extensions", {"firstName": "Ada", "lastName": "Byron", "email": "Ada.Byron@Example.com"}
    )
    await wait_until(lambda: directory.by_email("ada.byron@example.com") is not None)
    assert len(directory) == before + 1
    await harness.control.post(f"extensions/{added['id']}/disable")
    await wait_until(lambda: directory.by_email("ada.byron@example.com") is None)
    assert len(directory) == before


async def test_last_known_presence_survives_a_restart(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await store.open()
    try:
        company = build_company(20, seed=7)
        sim = RingCentralSimulator(company, time_scale=TimeScale(60.0))
        await sim.start()
        try:
            async with start_harness(memory=store, sim=sim) as first:
                mia = first.person(0)
                await call(first, mia, "connected")
                await wait_until(lambda: bool(first.recorder.of(mia)))
            # Stopped: the presence was flushed on the way out. A new process restores it.
            async with start_harness(memory=store, sim=sim) as second:
                known = second.pipeline.roster.presence(mia)
                assert known is not None
                assert known.availability is Availability.ON_CALL
                # Restored state is not news: no transition for Mia on the second start.
                assert second.recorder.of(mia) == []  # linked as on a call; no change since
        finally:
            await sim.stop()
    finally:
        await store.close()
