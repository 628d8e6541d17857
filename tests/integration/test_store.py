"""The store on SQLite and PostgreSQL: tables round-trip, rules hold, migrations move forward."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import time
import traceback
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from slack_sdk.oauth.installation_store import Installation
from sqlalchemy import Connection, insert, inspect, make_url, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.coordinator import PresenceMemory
from bot.presence import (
    CallDirection,
    CallParty,
    DndStatus,
    MeetingStatus,
    Presence,
    PresenceStatus,
    TelephonyStatus,
)
from bot.store import (
    LATEST_VERSION,
    AutoLinkConflict,
    LinkConflict,
    SlackStatus,
    Store,
    StoreError,
    TooManyLinkRequests,
    migrations,
    schema,
)
from bot.store.engine import build_engine, parse_url
from bot.store.links import MAX_PENDING_REQUESTS
from tests.store_fixtures import (
    BACKENDS,
    NO_POSTGRES,
    POSTGRES_ENV,
    database_url,
    postgres_admin_url,
    private_postgres,
)

__all__ = ["database_url"]  # the fixture, imported so pytest finds it here

T0 = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)


class Clock:
    """A settable UTC clock, so tests decide what "now" is."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(database_url: str, clock: Clock) -> AsyncIterator[Store]:
    async with Store(database_url, client_id="1111.2222", clock=clock) as opened:
        yield opened


# ------------------------------------------------------------------------------- schema


async def _versions(url: str) -> list[int]:
    engine = build_engine(parse_url(url), echo=False)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                select(schema.schema_version.c.version).order_by(schema.schema_version.c.version)
            )
            return list(found.scalars())
    finally:
        await engine.dispose()


async def _backend_pid(engine: AsyncEngine) -> int | None:
    async with engine.connect() as conn:
        pid: int | None = await conn.scalar(text("SELECT pg_backend_pid()"))
        return pid


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason=NO_POSTGRES)
async def test_a_pooled_connection_the_server_cut_is_replaced_once_it_sat_idle() -> None:
    """A server restart cuts pooled connections. One that sat idle is checked at checkout and
    replaced; one used a moment ago is not checked (the check cost three round trips on every
    transaction), so its cut surfaces as an error, which the next transaction recovers from."""
    async with private_postgres(postgres_admin_url()) as url:
        for after, survives in ((0.0, True), (3600.0, False)):
            engine = build_engine(parse_url(url), echo=False, ping_after_idle=after)
            try:
                pid = await _backend_pid(engine)
                admin = build_engine(parse_url(postgres_admin_url()), echo=False)
                try:
                    async with admin.connect() as conn:
                        assert await conn.scalar(text(f"SELECT pg_terminate_backend({pid})"))
                finally:
                    await admin.dispose()
                if survives:
                    assert await _backend_pid(engine) not in (None, pid)
                else:
                    with pytest.raises(DBAPIError):
                        await _backend_pid(engine)
                    assert await _backend_pid(engine) not in (None, pid)
            finally:
                await engine.dispose()


async def test_opening_twice_migrates_once_and_keeps_rows(database_url: str) -> None:
    async with Store(database_url) as first:
        await first.link("T1", "U1", "101", "manual")
    async with Store(database_url) as second:
        await second.open()  # a second open on an open store does nothing
        link = await second.link_for_user("T1", "U1")
    assert link is not None
    assert link.extension_id == "101"
    assert await _versions(database_url) == [m.version for m in migrations.MIGRATIONS]


async def test_replicas_starting_together_migrate_once(database_url: str) -> None:
    stores = [Store(database_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    await asyncio.gather(*(s.close() for s in stores))
    assert await _versions(database_url) == [m.version for m in migrations.MIGRATIONS]


async def test_an_old_schema_is_migrated_forward_with_its_rows(database_url: str) -> None:
    engine = build_engine(parse_url(database_url), echo=False)
    try:
        assert await migrations.upgrade(engine, target=1) == 1
        async with engine.begin() as conn:
            await conn.execute(
                insert(schema.preferences).values(
                    team_id="T1", user_id="U1", policy="replace", updated_at=T0
                )
            )
            await conn.execute(
                insert(schema.links).values(
                    team_id="T1", user_id="U1", extension_id="101", source="auto", linked_at=T0
                )
            )

            def shape(sync_conn: object) -> tuple[set[str], set[str]]:
                inspector = inspect(sync_conn)
                columns = {c["name"] for c in inspector.get_columns("rcstatus_preferences")}
                return set(inspector.get_table_names()), columns

            tables, columns = await conn.run_sync(shape)
        assert "rcstatus_watches" not in tables
        assert "disconnected_notified_at" not in columns
        assert await migrations.applied_version(engine) == 1
    finally:
        await engine.dispose()

    async with Store(database_url) as store:
        prefs = await store.preferences("T1", "U1")
        assert prefs.policy == "replace"
        assert prefs.disconnected_notified_at is None
        assert (await store.link_for_user("T1", "U1")) is not None
        watch = await store.add_watch("T1", "U1", "U2", T0 + timedelta(hours=1))
        assert watch.state == "active"
        notified = T0 + timedelta(minutes=5)
        prefs = await store.update_preferences("T1", "U1", disconnected_notified_at=notified)
        assert prefs.disconnected_notified_at == notified
    assert await _versions(database_url) == [m.version for m in migrations.MIGRATIONS]


async def test_a_failed_migration_leaves_the_previous_version_intact(database_url: str) -> None:
    def half_done(conn: Connection) -> None:
        conn.execute(text("CREATE TABLE rcstatus_half_done (id INTEGER PRIMARY KEY)"))
        raise RuntimeError("step 4 broke")

    broken = (*migrations.MIGRATIONS, migrations.Migration(LATEST_VERSION + 1, "broken", half_done))
    engine = build_engine(parse_url(database_url), echo=False)
    try:
        with pytest.raises(RuntimeError, match="step 4 broke"):
            await migrations.upgrade(engine, steps=broken)
        assert await migrations.applied_version(engine) == 0  # the whole upgrade rolled back
        assert await migrations.upgrade(engine) == LATEST_VERSION
        with pytest.raises(RuntimeError, match="step 4 broke"):
            await migrations.upgrade(engine, steps=broken)
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "rcstatus_half_done" not in tables
        assert await migrations.applied_version(engine) == LATEST_VERSION
    finally:
        await engine.dispose()


async def test_the_migrated_schema_has_every_declared_column_and_index(
    store: Store,
) -> None:
    def shape(sync_conn: object) -> dict[str, tuple[dict[str, bool], set[str]]]:
        inspector = inspect(sync_conn)
        return {
            table.name: (
                {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)},
                {i["name"] for i in inspector.get_indexes(table.name) if i["name"]},
            )
            for table in schema.metadata.sorted_tables
        }

    async with store.engine.connect() as conn:
        found = await conn.run_sync(shape)
    for table in schema.metadata.sorted_tables:
        columns, indexes = found[table.name]
        declared = {c.name: bool(c.nullable) and not c.primary_key for c in table.columns}
        assert columns == declared, table.name
        assert {str(i.name) for i in table.indexes} <= indexes, table.name


async def test_a_newer_schema_is_refused(database_url: str) -> None:
    async with Store(database_url) as store, store.engine.begin() as conn:
        await conn.execute(
            insert(schema.schema_version).values(version=99, description="future", applied_at=T0)
        )
    with pytest.raises(StoreError, match="version 99"):
        await Store(database_url).open()


# ------------------------------------------------------------------------------- errors


def _refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _without_secret(error: BaseException, secret: str) -> None:
    assert secret not in str(error)
    assert secret not in "".join(traceback.format_exception(error))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_database_that_cannot_be_used_is_a_store_error_without_the_password(
    backend: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'rcstatus.db'}"
        named, secret = "missing", "no-password-in-sqlite"
    else:
        url = (
            make_url(postgres_admin_url())
            .set(password="s3cret-pw", database="rcstatus_no_such_database")
            .render_as_string(hide_password=False)
        )
        named, secret = str(make_url(url).host), "s3cret-pw"
    with pytest.raises(StoreError) as caught:
        await Store(url).open()
    assert named in str(caught.value)
    _without_secret(caught.value, secret)


async def test_an_unreachable_server_is_named_without_the_password() -> None:
    url = f"postgresql+asyncpg://bot:hunter2-secret@127.0.0.1:{_refused_port()}/rcstatus"
    with pytest.raises(StoreError, match=r"127\.0\.0\.1") as caught:
        await Store(url).open()
    _without_secret(caught.value, "hunter2-secret")


@pytest.mark.parametrize(
    "url", ["mysql+aiomysql://bot:hunter2-secret@db/rcstatus", "hunter2-secret, not a url"]
)
def test_an_unsupported_url_is_refused_without_the_password(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        Store(url)
    _without_secret(caught.value, "hunter2-secret")


async def test_using_a_store_before_open_says_so(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(StoreError, match="not open"):
        await store.links("T1")


# ------------------------------------------------------------------------------- links


async def test_links_round_trip_per_workspace(store: Store, clock: Clock) -> None:
    made = await store.link("T1", "U1", "101", "manual")
    await store.link("T1", "U2", "102", "auto")
    await store.link("T2", "U1", "101", "auto")  # another workspace may use the same extension
    loaded = await store.link_for_user("T1", "U1")
    assert loaded == made
    assert loaded is not None
    assert (loaded.linked_at, loaded.linked_at.tzinfo) == (T0, UTC)
    assert await store.link_for_extension("T1", "101") == made
    assert [(x.user_id, x.extension_id, x.source) for x in await store.links("T1")] == [
        ("U1", "101", "manual"),
        ("U2", "102", "auto"),
    ]
    assert [x.team_id for x in await store.links_for_extension("101")] == ["T1", "T2"]

    clock.advance(minutes=1)
    moved = await store.link("T1", "U1", "103", "manual")
    assert moved.linked_at == clock.now
    assert await store.link_for_extension("T1", "101") is None

    assert await store.unlink("T1", "U1") == moved
    assert await store.unlink("T1", "U1") is None
    assert await store.link_for_user("T1", "U1") is None


async def test_a_taken_extension_is_a_conflict_naming_its_holder(store: Store) -> None:
    await store.link("T1", "U1", "101", "manual")
    with pytest.raises(LinkConflict, match="U1") as caught:
        await store.link("T1", "U2", "101", "manual")
    assert caught.value.holder.user_id == "U1"
    assert caught.value.extension_id == "101"
    with pytest.raises(LinkConflict):
        await store.link("T1", "U2", "101", "auto")
    assert await store.link_for_user("T1", "U2") is None


async def test_racing_links_for_one_extension_give_it_to_exactly_one_person(
    store: Store,
) -> None:
    results = await asyncio.gather(
        *(store.link("T1", f"U{n}", "101", "manual") for n in range(6)), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, LinkConflict) for r in results if r not in winners)
    assert [x.user_id for x in await store.links("T1")] == [winners[0].user_id]


async def test_no_link_takes_another_persons_extension_without_an_admin(store: Store) -> None:
    await store.link("T1", "U1", "101", "auto")
    with pytest.raises(LinkConflict):
        await store.link("T1", "U2", "101", "manual")
    with pytest.raises(LinkConflict):
        await store.assign_link("T1", "U2", "101", actor_id="U2")
    assert (await store.link_for_extension("T1", "101")) == await store.link_for_user("T1", "U1")

    # The admin names whom they take it from; naming anyone else changes nothing.
    with pytest.raises(LinkConflict):
        await store.assign_link("T1", "U2", "101", actor_id="UADMIN", displace="U9")
    change = await store.assign_link("T1", "U2", "101", actor_id="UADMIN", displace="U1")
    assert change.displaced is not None
    assert change.displaced.user_id == "U1"
    assert await store.link_for_user("T1", "U1") is None
    assert change.event is not None
    assert (change.event.actor_id, change.event.subject_id, change.event.displaced_id) == (
        "UADMIN",
        "U2",
        "U1",
    )

    kept = await store.link("T1", "U2", "105", "auto")
    assert kept == change.link  # an automatic link never replaces a person's own choice
    with pytest.raises(LinkConflict):
        await store.link("T1", "U3", "101", "auto")


async def test_link_changes_are_audited_and_the_people_touched_are_told_once(
    store: Store,
) -> None:
    await store.assign_link("T1", "U1", "101", actor_id="U1")  # their own act: no notice
    await store.assign_link("T1", "U2", "101", actor_id="UADMIN", displace="U1")
    await store.unlink("T1", "U2", actor_id="UADMIN")

    trail = await store.link_events("T1")
    assert [(e.action, e.actor_id, e.subject_id, e.displaced_id) for e in trail] == [
        ("unlinked", "UADMIN", "U2", None),
        ("linked", "UADMIN", "U2", "U1"),
        ("linked", "U1", "U1", None),
    ]
    assert await store.take_link_notices("T1", "UADMIN") == []
    told_u1 = await store.take_link_notices("T1", "U1")
    assert [(e.action, e.subject_id) for e in told_u1] == [("linked", "U2")]
    told_u2 = await store.take_link_notices("T1", "U2")
    assert [e.action for e in told_u2] == ["linked", "unlinked"]
    assert await store.take_link_notices("T1", "U1") == []  # told once


async def test_a_link_request_changes_nothing_until_one_admin_approves(
    store: Store, clock: Clock
) -> None:
    await store.link("T1", "UOWNER", "101", "auto")
    first = await store.request_link("T1", "UREQ", "102", holder_id=None, ttl=timedelta(days=1))
    request = await store.request_link(
        "T1", "UREQ", "101", holder_id="UOWNER", ttl=timedelta(days=1)
    )
    withdrawn = await store.link_request("T1", first.id)
    assert withdrawn is not None
    assert withdrawn.state == "withdrawn"  # asking again replaces the earlier request
    assert await store.link_for_user("T1", "UREQ") is None

    decisions = await asyncio.gather(
        store.decide_link_request("T1", request.id, decider_id="UA1", approve=True),
        store.decide_link_request("T1", request.id, decider_id="UA2", approve=False),
    )
    assert sum(1 for d in decisions if d is not None and d.decided_now) == 1
    winner = next(d for d in decisions if d is not None and d.decided_now)
    link = await store.link_for_user("T1", "UREQ")
    if winner.request.state == "approved":
        assert link is not None
        assert link.extension_id == "101"
        assert winner.change is not None
        assert winner.change.displaced is not None
        assert winner.change.displaced.user_id == "UOWNER"
        assert [e.action for e in await store.take_link_notices("T1", "UOWNER")] == ["approved"]
    else:
        assert winner.request.state == "denied"
        assert link is None
    assert await store.decide_link_request("T2", request.id, decider_id="UA1", approve=True) is None


async def test_an_approval_after_the_extension_changed_hands_moves_nothing(
    store: Store, clock: Clock
) -> None:
    request = await store.request_link("T1", "UREQ", "101", holder_id=None, ttl=timedelta(hours=1))
    await store.link("T1", "ULATE", "101", "auto")
    decision = await store.decide_link_request("T1", request.id, decider_id="UA", approve=True)
    assert decision is not None
    assert decision.request.state == "stale"
    assert decision.change is None
    assert (await store.link_for_extension("T1", "101")) == await store.link_for_user("T1", "ULATE")

    late = await store.request_link("T1", "UREQ", "102", holder_id=None, ttl=timedelta(hours=1))
    clock.advance(hours=2)
    expired = await store.decide_link_request("T1", late.id, decider_id="UA", approve=True)
    assert expired is not None
    assert (expired.request.state, expired.decided_now) == ("expired", False)
    assert await store.link_for_user("T1", "UREQ") is None


async def test_open_link_requests_are_bounded_per_workspace(store: Store) -> None:
    for n in range(MAX_PENDING_REQUESTS):
        await store.request_link("T1", f"U{n}", "101", holder_id=None, ttl=timedelta(days=1))
    with pytest.raises(TooManyLinkRequests):
        await store.request_link("T1", "UNEW", "101", holder_id=None, ttl=timedelta(days=1))
    # Asking again replaces one's own request, so it never counts twice.
    await store.request_link("T1", "U0", "102", holder_id=None, ttl=timedelta(days=1))


async def test_auto_link_sync_never_touches_manual_links(store: Store) -> None:
    await store.link("T1", "U_MANUAL", "200", "manual")
    await store.link("T1", "U_STAYS", "201", "auto")
    await store.link("T1", "U_MOVES", "202", "auto")
    await store.link("T1", "U_GONE", "203", "auto")
    await store.link("T2", "U_OTHER", "201", "auto")

    report = await store.replace_auto_links(
        "T1",
        {
            "U_STAYS": "201",
            "U_MOVES": "204",
            "U_NEW": "205",
            "U_MANUAL": "299",  # has a manual link: skipped
            "U_THIEF": "200",  # held manually by U_MANUAL
            "U_TWIN_A": "206",
            "U_TWIN_B": "206",  # two people matched one extension: nobody gets it
        },
    )
    assert [(x.user_id, x.extension_id) for x in report.added] == [
        ("U_MOVES", "204"),
        ("U_NEW", "205"),
    ]
    assert [(x.user_id, x.extension_id) for x in report.removed] == [
        ("U_GONE", "203"),
        ("U_MOVES", "202"),
    ]
    assert report.conflicts == (
        AutoLinkConflict("200", ("U_THIEF",), held_by="U_MANUAL"),
        AutoLinkConflict("206", ("U_TWIN_A", "U_TWIN_B")),
    )
    assert report.unchanged == 1
    assert {(x.user_id, x.extension_id, x.source) for x in await store.links("T1")} == {
        ("U_MANUAL", "200", "manual"),
        ("U_STAYS", "201", "auto"),
        ("U_MOVES", "204", "auto"),
        ("U_NEW", "205", "auto"),
    }
    assert [x.user_id for x in await store.links("T2")] == ["U_OTHER"]

    again = await store.replace_auto_links(
        "T1", {"U_STAYS": "201", "U_MOVES": "204", "U_NEW": "205"}
    )
    assert not again
    assert again.unchanged == 3


async def test_auto_link_sync_can_swap_extensions_between_people(store: Store) -> None:
    await store.link("T1", "U1", "101", "auto")
    await store.link("T1", "U2", "102", "auto")
    report = await store.replace_auto_links("T1", {"U1": "102", "U2": "101"})
    assert len(report.added) == 2
    assert {(x.user_id, x.extension_id) for x in await store.links("T1")} == {
        ("U1", "102"),
        ("U2", "101"),
    }


# ------------------------------------------------------------------------------- preferences


async def test_preferences_default_then_round_trip(store: Store) -> None:
    fresh = await store.preferences("T1", "U1")
    assert (fresh.sync_enabled, fresh.paused, fresh.policy) == (True, False, "respect")
    assert fresh.call_text is None
    assert fresh.starred == ()
    assert fresh.disconnected_notified_at is None

    notified = datetime(2026, 3, 2, 11, 0, tzinfo=timezone(timedelta(hours=2)))
    changed = await store.update_preferences(
        "T1",
        "U1",
        sync_enabled=False,
        policy="replace",
        call_text="On the phone",
        call_emoji=":phone:",
        meeting_text="In a meeting",
        meeting_emoji=":calendar:",
        starred=["U9", "U3", "U9"],
        disconnected_notified_at=notified,
    )
    assert changed == await store.preferences("T1", "U1")
    assert changed.starred == ("U9", "U3")
    assert changed.disconnected_notified_at == notified
    assert changed.disconnected_notified_at is not None
    assert changed.disconnected_notified_at.tzinfo == UTC

    later = await store.update_preferences("T1", "U1", paused=True, call_text=None, starred=())
    assert later.paused
    assert later.call_text is None
    assert later.call_emoji == ":phone:"  # untouched fields stay
    assert later.policy == "replace"
    assert later.starred == ()
    assert (await store.preferences("T1", "U2")).policy == "respect"


async def test_preferences_refuse_what_they_do_not_know(store: Store) -> None:
    with pytest.raises(ValueError, match="policy"):
        await store.update_preferences("T1", "U1", policy="ignore")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="colour"):
        await store.update_preferences("T1", "U1", colour="red")  # type: ignore[call-arg]
    naive = datetime(2026, 3, 2, 11, 0)
    with pytest.raises(ValueError, match="timezone"):
        await store.update_preferences("T1", "U1", disconnected_notified_at=naive)
    assert (await store.preferences("T1", "U1")).policy == "respect"


async def test_workspace_defaults_round_trip(store: Store) -> None:
    assert (await store.workspace_defaults("T1")).call_text is None
    await store.update_workspace_defaults("T1", call_text="📞 On a call", call_emoji=":phone:")
    defaults = await store.update_workspace_defaults("T1", meeting_text="In a meeting")
    assert (defaults.call_text, defaults.call_emoji, defaults.meeting_text) == (
        "📞 On a call",
        ":phone:",
        "In a meeting",
    )
    assert defaults.meeting_emoji is None
    assert (await store.workspace_defaults("T2")).call_text is None


# ------------------------------------------------------------------------------- claims


async def test_a_claim_keeps_the_status_it_saved_until_released(store: Store, clock: Clock) -> None:
    own = SlackStatus("Lunch", ":sandwich:", 1_800_000_000)
    ours = SlackStatus("On a call", ":telephone_receiver:", 1_772_444_000)
    claim = await store.claim("T1", "U1", saved=own, written=ours)
    assert (claim.saved, claim.written, claim.state) == (own, ours, "claimed")
    assert claim.claimed_at == claim.written_at == T0

    clock.advance(minutes=2)
    refreshed = SlackStatus("On a call", ":telephone_receiver:", 1_772_444_600)
    again = await store.claim("T1", "U1", saved=ours, written=refreshed)
    assert again.saved == own  # our own status must never become the one we restore
    assert again.written == refreshed
    assert again.claimed_at == T0
    assert again.written_at == clock.now

    clock.advance(minutes=2)
    updated = await store.update_written("T1", "U1", SlackStatus("Ringing", ":bell:", 5))
    assert updated is not None
    assert updated.written == SlackStatus("Ringing", ":bell:", 5)
    assert updated.written_at == clock.now

    await store.claim("T1", "U2", saved=SlackStatus(), written=ours)
    await store.claim("T2", "U1", saved=SlackStatus(), written=ours)
    assert [c.user_id for c in await store.claims("T1")] == ["U1", "U2"]
    assert [(c.team_id, c.user_id) for c in await store.active_claims()] == [
        ("T1", "U1"),
        ("T1", "U2"),
        ("T2", "U1"),
    ]

    released = await store.release("T1", "U1")
    assert released is not None
    assert (released.state, released.saved, released.active) == ("released", own, False)
    assert await store.release("T1", "U1") is None
    assert await store.update_written("T1", "U1", ours) is None
    record = await store.claim_for("T1", "U1")
    assert record is not None
    assert record.state == "released"
    assert [c.user_id for c in await store.claims("T1")] == ["U2"]

    clock.advance(minutes=30)
    fresh = await store.claim("T1", "U1", saved=SlackStatus("Focus", ":brain:"), written=ours)
    assert fresh.saved == SlackStatus("Focus", ":brain:", 0)  # a new claim saves anew
    assert fresh.claimed_at == clock.now
    assert await store.claim_for("T9", "U9") is None


# ------------------------------------------------------------------------------- watches


async def test_watch_lifecycle(store: Store, clock: Clock) -> None:
    busy = T0 - timedelta(minutes=7)
    first = await store.add_watch("T1", "W1", "ALICE", T0 + timedelta(hours=1), busy_since=busy)
    assert (first.state, first.busy_since, first.created_at) == ("active", busy, T0)

    extended = await store.add_watch("T1", "W1", "ALICE", T0 + timedelta(hours=3))
    assert extended.id == first.id
    assert extended.expires_at == T0 + timedelta(hours=3)
    assert extended.busy_since == busy
    not_shortened = await store.add_watch("T1", "W1", "ALICE", T0 + timedelta(minutes=5))
    assert not_shortened.expires_at == T0 + timedelta(hours=3)

    bob = await store.add_watch("T1", "W1", "BOB", T0 + timedelta(minutes=30))
    other = await store.add_watch("T1", "W2", "ALICE", T0 + timedelta(hours=2))
    assert await store.active_watch_count("T1", "W1") == 2
    assert [w.watcher_id for w in await store.watches_on("T1", "ALICE")] == ["W1", "W2"]

    assert await store.cancel_watch("T1", "W2", "ALICE")
    assert not await store.cancel_watch("T1", "W2", "ALICE")
    cancelled = await store.watch(other.id)
    assert cancelled is not None
    assert cancelled.state == "cancelled"

    racing = await asyncio.gather(
        *(
            store.fire_watch(first.id, text="free", blocks=None, now=T0, give_up_at=T0)
            for _ in range(4)
        )
    )
    assert sorted(racing) == [False, False, False, True]  # one DM, however many replicas race
    [queued] = await store.due_dms("T1", T0)
    await store.dm_sent(queued.id, T0)
    fired = await store.watch(first.id)
    assert fired is not None
    assert (fired.state, fired.fired_at) == ("fired", T0)
    assert await store.watches_on("T1", "ALICE") == []

    renewed = await store.add_watch("T1", "W1", "ALICE", T0 + timedelta(hours=1))
    assert renewed.id != first.id  # a fired watch is done; asking again starts a new one

    clock.advance(minutes=31)
    assert await store.watches_on("T1", "BOB") == []  # past its time, even before the sweep
    expired = await store.expire_watches(clock.now)
    assert [(w.id, w.state) for w in expired] == [(bob.id, "expired")]
    assert await store.expire_watches(clock.now) == []
    assert await store.active_watch_count("T1", "W1") == 1

    pending = await store.watches_for("T1", "W1")
    assert [(w.target_id, w.state) for w in pending] == [("BOB", "expired"), ("ALICE", "active")]
    await store.mark_expiry_reported([w.id for w in expired])
    reported = await store.watch(bob.id)
    assert reported is not None
    assert reported.expiry_reported_at == clock.now
    assert [w.target_id for w in await store.watches_for("T1", "W1")] == ["ALICE"]


async def test_watch_counts_are_per_watcher_and_workspace(store: Store) -> None:
    for number in range(20):
        await store.add_watch("T1", "W1", f"U{number}", T0 + timedelta(hours=1))
    await store.add_watch("T2", "W1", "U1", T0 + timedelta(hours=1))
    assert await store.active_watch_count("T1", "W1") == 20
    assert await store.active_watch_count("T2", "W1") == 1
    assert await store.active_watch_count("T1", "W2") == 0


# ------------------------------------------------------------------------------- presence


def _presence(number: int) -> Presence:
    """A deterministic presence whose fields vary with `number`, every one of them set or not."""
    on_call = number % 3 == 0
    since = T0 - timedelta(seconds=number)

    def pick(options: list[object]) -> object:
        return options[number % len(options)]

    return Presence(
        extension_id=str(100_000 + number),
        availability_since=since,
        updated_at=T0 + timedelta(microseconds=number),
        presence_status=pick([*PresenceStatus, None]),  # type: ignore[arg-type]
        user_status=pick([None, *PresenceStatus]),  # type: ignore[arg-type]
        telephony_status=pick([*TelephonyStatus, None]),  # type: ignore[arg-type]
        aggregated_telephony_status=pick([None, *TelephonyStatus]),  # type: ignore[arg-type]
        dnd_status=pick([*DndStatus, None]),  # type: ignore[arg-type]
        dnd_status_personal=pick([None, *DndStatus]),  # type: ignore[arg-type]
        meeting_status=pick([*MeetingStatus, None]),  # type: ignore[arg-type]
        allow_see_my_presence=pick([True, False, None]),  # type: ignore[arg-type]
        active_calls=pick([0, 1, 2, None]),  # type: ignore[arg-type]
        call_direction=pick([*CallDirection, None]) if on_call else None,  # type: ignore[arg-type]
        on_call_since=since if on_call else None,
    )


async def test_every_presence_field_round_trips(store: Store) -> None:
    full = Presence(
        extension_id="4242",
        availability_since=datetime(2026, 3, 2, 10, 0, 1, 5, tzinfo=timezone(timedelta(hours=-5))),
        updated_at=T0,
        presence_status=PresenceStatus.BUSY,
        user_status=PresenceStatus.AVAILABLE,
        telephony_status=TelephonyStatus.ON_HOLD,
        aggregated_telephony_status=TelephonyStatus.CALL_CONNECTED,
        dnd_status=DndStatus.DO_NOT_ACCEPT_DEPARTMENT_CALLS,
        dnd_status_personal=DndStatus.TAKE_ALL_CALLS,
        meeting_status=MeetingStatus.CONNECTED,
        allow_see_my_presence=False,
        active_calls=2,
        call_direction=CallDirection.OUTBOUND,
        call_party=CallParty.INTERNAL,
        on_call_since=T0 - timedelta(minutes=3),
    )
    assert all(getattr(full, f.name) is not None for f in dataclasses.fields(Presence))
    await store.save_presence([full])
    (loaded,) = await store.load_presence()
    assert loaded == full
    assert loaded.availability_since.tzinfo == UTC
    assert isinstance(loaded.telephony_status, TelephonyStatus)
    assert loaded.availability is full.availability


async def test_ten_thousand_presences_upsert_and_load_equal(store: Store) -> None:
    memory: PresenceMemory = store  # what the coordinator holds (mypy checks the protocol)
    presences = [_presence(n) for n in range(10_000)]
    await memory.save_presence(presences)
    assert sorted(await memory.load_presence(), key=lambda p: p.extension_id) == presences

    changed = [
        dataclasses.replace(p, telephony_status=TelephonyStatus.NO_CALL, updated_at=T0)
        for p in presences[::2]
    ]
    await memory.save_presence([*changed, changed[0]])  # a repeated extension in one batch
    expected = {p.extension_id: p for p in [*presences, *changed]}
    loaded = {p.extension_id: p for p in await memory.load_presence()}
    assert loaded == expected

    gone = [p.extension_id for p in presences[:1500]]
    await memory.forget_presence(gone)
    remaining = await memory.load_presence()
    assert len(remaining) == 8500
    assert not set(gone) & {p.extension_id for p in remaining}


# ------------------------------------------------------------------------------- Slack stores


def _installation(user_id: str, *, installed_at: float) -> Installation:
    """What Bolt's OAuth flow saves when a person installs the app with a user token."""
    return Installation(
        app_id="A1",
        enterprise_id=None,
        team_id="T1",
        team_name="Acme",
        bot_token="xoxb-bot-1",
        bot_id="B1",
        bot_user_id="UBOT",
        bot_scopes="commands,chat:write",
        user_id=user_id,
        user_token=f"xoxp-user-{user_id}",
        user_scopes="users.profile:write",
        installed_at=installed_at,
    )


async def test_bolt_installations_are_saved_and_found_by_team_and_user(store: Store) -> None:
    installations = store.installation_store
    for number, user_id in enumerate(["U1", "U2"]):
        await installations.async_save(_installation(user_id, installed_at=time.time() + number))
    alice = await installations.async_find_installation(
        enterprise_id=None, team_id="T1", user_id="U1"
    )
    assert alice is not None
    assert (alice.user_token, alice.bot_token) == ("xoxp-user-U1", "xoxb-bot-1")
    bot = await installations.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None
    assert bot.bot_token == "xoxb-bot-1"
    assert (
        await installations.async_find_installation(enterprise_id=None, team_id="T2", user_id="U1")
        is None
    )

    await installations.async_delete_installation(enterprise_id=None, team_id="T1", user_id="U1")
    assert (
        await installations.async_find_installation(enterprise_id=None, team_id="T1", user_id="U1")
        is None
    )
    bob = await installations.async_find_installation(
        enterprise_id=None, team_id="T1", user_id="U2"
    )
    assert bob is not None
    assert bob.user_token == "xoxp-user-U2"


async def test_oauth_states_are_single_use(store: Store) -> None:
    states = store.oauth_state_store
    state = await states.async_issue()
    assert await states.async_consume(state)
    assert not await states.async_consume(state)
    assert not await states.async_consume("never-issued")


async def test_the_installation_store_needs_a_client_id(database_url: str) -> None:
    async with Store(database_url) as store:
        with pytest.raises(StoreError, match="client id"):
            _ = store.installation_store


async def test_racing_stars_never_pass_the_limit_and_keep_their_order(store: Store) -> None:
    results = await asyncio.gather(
        *(store.star("T1", "U1", f"U{n:03d}", limit=5) for n in range(12)),
        return_exceptions=True,
    )
    assert results.count(True) == 5
    assert results.count(False) == 7
    starred = (await store.preferences("T1", "U1")).starred
    assert len(starred) == 5
    assert await store.star("T1", "U1", starred[0], limit=5)  # already there: fine at the cap
    await store.unstar("T1", "U1", starred[1])
    assert await store.star("T1", "U1", "UNEW", limit=5)
    assert (await store.preferences("T1", "U1")).starred == (
        starred[0],
        *starred[2:],
        "UNEW",
    )


async def test_changes_recorded_together_keep_their_order_and_ids(
    store: Store, clock: Clock
) -> None:
    rows = [(clock.now, f"U{n}", {"availability": "on_call", "n": n}) for n in range(5)]
    ids = await store.append_events("T1", rows)
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    replayed = await store.events_after("T1", ids[1], 10)
    assert [(e.id, e.user_id, e.data["n"]) for e in replayed] == [
        (ids[n], f"U{n}", n) for n in range(2, 5)
    ]
    assert await store.events_after("T2", 0, 10) == []
