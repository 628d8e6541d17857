"""The status writer under the coordinator, in virtual time: races with the person's hand and the
phone at every pause between deciding and writing (the token lookup, the debounce, the claim's
save, the write itself)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.policy import EMPTY_STATUS
from bot.presence import TelephonyStatus
from tests.unit.hub import CALL, LUNCH, TEAM, VACATIONING, Hub, Lands, running_hub, virtual

ALICE, EXT = "U1", "101"
CONNECTED, ENDED = TelephonyStatus.CALL_CONNECTED, TelephonyStatus.NO_CALL


async def call_is_shown(hub: Hub) -> None:
    """A call long enough to be written: On a call is on the profile, ours."""
    await hub.phone(EXT, CONNECTED)
    await hub.until(hub.now() + 5)
    assert hub.slack.shows(ALICE) == CALL


async def active_claim(hub: Hub) -> bool:
    claim = await hub.store.claim_for(TEAM, ALICE)
    return claim is not None and claim.active


def test_a_call_is_shown_after_the_debounce_and_the_status_comes_back(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(tmp_path, {ALICE: EXT}) as hub:
            await hub.by_hand(ALICE, LUNCH)
            await hub.writer.preferences_changed(ALICE)
            await hub.store.update_preferences(TEAM, ALICE, policy="replace")
            await hub.writer.preferences_changed(ALICE)
            await hub.phone(EXT, CONNECTED)
            await hub.until(hub.now() + 1.5)
            assert hub.slack.shows(ALICE) == LUNCH  # within the debounce: nothing written
            await hub.until(hub.now() + 3)
            assert hub.slack.shows(ALICE) == CALL
            await hub.phone(EXT, ENDED)
            await hub.until(hub.now() + 5)
            await hub.settled()
            assert hub.slack.shows(ALICE) == LUNCH
            assert hub.slack.writes_of(ALICE) == [CALL, LUNCH]
            assert not await active_claim(hub)

    virtual(body)


# ---------------------------------------------------------------------- the person's hand


def test_a_status_set_by_hand_during_the_token_lookup_is_not_written_over(
    tmp_path: Path,
) -> None:
    # The reported race: the call is taken in, the writer looks the person's token up, and
    # Slack's event for the status they set by hand arrives during that lookup.
    async def body() -> None:
        async with running_hub(tmp_path, {ALICE: EXT}) as hub:
            await hub.writer.connected(ALICE)  # just connected: the token is not known yet
            hub.slack.lookups.close()
            taking_in = hub.phone_soon(EXT, CONNECTED)
            await hub.until(hub.now() + 0.01)
            assert hub.slack.lookups.waiting == 1
            await hub.by_hand(ALICE, VACATIONING)
            hub.slack.lookups.open()
            await taking_in
            await hub.until(hub.now() + 10)
            await hub.settled()
            assert hub.slack.shows(ALICE) == VACATIONING
            assert hub.slack.writes_of(ALICE) == []
            assert hub.writer.explain(ALICE) == "respecting the status you set yourself"

    virtual(body)


def test_a_status_set_by_hand_during_the_debounce_is_kept_through_the_call(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with running_hub(tmp_path, {ALICE: EXT}) as hub:
            await hub.phone(EXT, CONNECTED)
            await hub.until(hub.now() + 1)
            await hub.by_hand(ALICE, VACATIONING)
            await hub.until(hub.now() + 10)
            await hub.phone(EXT, ENDED)
            await hub.until(hub.now() + 10)
            await hub.settled()
            assert hub.slack.shows(ALICE) == VACATIONING
            assert hub.slack.writes_of(ALICE) == []

    virtual(body)


def test_a_status_set_by_hand_while_the_claim_is_saved_stops_the_write(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(tmp_path, {ALICE: EXT}) as hub:
            held = await hub.store.engine.connect()  # the claim's save waits for this
            try:
                await hub.phone(EXT, CONNECTED)
                await hub.until(hub.now() + 2.5)  # the show's turn: its claim is being saved
                await hub.by_hand(ALICE, VACATIONING)
            finally:
                await held.close()
            await hub.until(hub.now() + 10)
            await hub.settled()
            assert hub.slack.shows(ALICE) == VACATIONING
            assert hub.slack.writes_of(ALICE) == []
            assert not await active_claim(hub)

    virtual(body)


@pytest.mark.parametrize("lands", ["on_request", "on_answer"])
def test_a_status_set_by_hand_while_our_write_is_in_flight_wins(
    tmp_path: Path, lands: Lands
) -> None:
    # Slack may apply our write before or after theirs; either way theirs is what stays.
    async def body() -> None:
        async with running_hub(tmp_path, {ALICE: EXT}, lands=lands) as hub:
            hub.slack.answers.close()
            await hub.phone(EXT, CONNECTED)
            await hub.until(hub.now() + 2.5)
            assert hub.slack.answers.waiting == 1  # "On a call" on its way
            await hub.by_hand(ALICE, VACATIONING)
            hub.slack.answers.open()
            await hub.until(hub.now() + 0.5)
            await hub.echo(ALICE)  # Slack's event for whatever it ended up showing
            await hub.until(hub.now() + 10)
            await hub.phone(EXT, ENDED)
            await hub.until(hub.now() + 10)
            await hub.settled()
            assert hub.slack.shows(ALICE) == VACATIONING
            assert not await active_claim(hub)
            assert hub.writer.stats.manual_changes == 1

    virtual(body)


def test_a_status_set_by_hand_mid_call_is_never_restored_over(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(tmp_path, {ALICE: EXT}) as hub:
            await call_is_shown(hub)
            await hub.by_hand(ALICE, VACATIONING)
            await hub.phone(EXT, ENDED)
            await hub.until(hub.now() + 10)
            await hub.settled()
            assert hub.slack.shows(ALICE) == VACATIONING
            assert hub.slack.writes_of(ALICE) == [CALL]

    virtual(body)


# ---------------------------------------------------------------------- the phone


def test_a_hang_up_during_the_debounce_writes_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(tmp_path, {ALICE: EXT}) as hub:
            await hub.phone(EXT, CONNECTED)
            await hub.until(hub.now() + 1)
            await hub.phone(EXT, ENDED)
            await hub.until(hub.now() + 10)
            await hub.settled()
            assert hub.slack.writes_of(ALICE) == []

    virtual(body)


def test_a_hang_up_during_the_token_lookup_writes_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(tmp_path, {ALICE: EXT}) as hub:
            await hub.writer.connected(ALICE)
            hub.slack.lookups.close()
            taking_in = hub.phone_soon(EXT, CONNECTED)
            await hub.until(hub.now() + 0.01)
            hanging_up = hub.phone_soon(EXT, ENDED)
            await hub.until(hub.now() + 0.01)
            hub.slack.lookups.open()
            await taking_in
            await hanging_up
            await hub.until(hub.now() + 10)
            await hub.settled()
            assert hub.slack.writes_of(ALICE) == []

    virtual(body)


def test_a_hang_up_while_the_claim_is_saved_writes_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(tmp_path, {ALICE: EXT}) as hub:
            held = await hub.store.engine.connect()
            try:
                await hub.phone(EXT, CONNECTED)
                await hub.until(hub.now() + 2.5)
                await hub.phone(EXT, ENDED)
            finally:
                await held.close()
            await hub.until(hub.now() + 10)
            await hub.settled()
            assert hub.slack.shows(ALICE) == EMPTY_STATUS
            assert hub.slack.writes_of(ALICE) == []
            assert not await active_claim(hub)

    virtual(body)


def test_a_hang_up_while_our_write_is_in_flight_is_followed_by_the_release(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with running_hub(tmp_path, {ALICE: EXT}) as hub:
            hub.slack.answers.close()
            await hub.phone(EXT, CONNECTED)
            await hub.until(hub.now() + 2.5)
            assert hub.slack.answers.waiting == 1
            await hub.phone(EXT, ENDED)
            hub.slack.answers.open()
            await hub.until(hub.now() + 10)
            await hub.settled()
            assert hub.slack.shows(ALICE) == EMPTY_STATUS
            assert hub.slack.writes_of(ALICE) == [CALL, EMPTY_STATUS]
            assert not await active_claim(hub)

    virtual(body)


def test_a_new_call_while_the_release_is_in_flight_is_shown(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(tmp_path, {ALICE: EXT}) as hub:
            await call_is_shown(hub)
            hub.slack.answers.close()
            await hub.phone(EXT, ENDED)
            await hub.until(hub.now() + 2.5)  # past the gap hold: the release is on its way
            assert hub.slack.answers.waiting == 1
            await hub.phone(EXT, CONNECTED)
            hub.slack.answers.open()
            await hub.until(hub.now() + 10)
            await hub.settled()
            assert hub.slack.shows(ALICE) == CALL
            assert hub.writer.stats.manual_changes == 0

    virtual(body)


# ---------------------------------------------------------------------- tokens


def test_a_token_slack_refuses_is_not_tried_again_until_they_connect(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(tmp_path, {ALICE: EXT}) as hub:
            hub.slack.revoked.add(ALICE)
            for _ in range(3):
                await hub.phone(EXT, CONNECTED)
                await hub.until(hub.now() + 5)
                await hub.phone(EXT, ENDED)
                await hub.until(hub.now() + 5)
            await hub.settled()
            assert hub.slack.writes_of(ALICE) == [CALL]  # the one write that found out
            assert [to for to, _text in hub.slack.dms] == [ALICE]
            assert "Reconnect here: http://bot/slack/install" in hub.slack.dms[0][1]
            assert hub.writer.explain(ALICE) == "not connected"
            # They connect again: the next call is shown.
            hub.slack.revoked.clear()
            hub.slack.connected.add(ALICE)
            await hub.writer.connected(ALICE)
            await call_is_shown(hub)

    virtual(body)


# ---------------------------------------------------------------------- learning


def test_each_ended_call_is_learned_once(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(tmp_path, {ALICE: EXT}) as hub:
            model = hub.scheduler.model("call")
            before = model.observations
            for _ in range(3):
                await call_is_shown(hub)
                await hub.phone(EXT, ENDED)
                await hub.until(hub.now() + 10)
            # A call shorter than the debounce is never shown, but it is a call all the same.
            await hub.phone(EXT, CONNECTED)
            await hub.until(hub.now() + 1)
            await hub.phone(EXT, ENDED)
            await hub.until(hub.now() + 10)
            await hub.settled()
            assert model.observations - before == 4

    virtual(body)


def test_an_echo_of_our_call_status_arriving_after_its_release_is_not_taken_for_a_hand(
    tmp_path: Path,
) -> None:
    """With replicas, Slack's event for our own write is relayed to the leader: it can arrive
    after our next write. Taken for the person's hand, it made the writer believe they showed
    "On a call" themselves, and it wrote nothing for their next call."""

    async def body() -> None:
        async with running_hub(tmp_path, {ALICE: EXT}) as hub:
            await call_is_shown(hub)
            ours = hub.slack.profiles[ALICE]
            await hub.phone(EXT, ENDED)
            await hub.until(hub.now() + 5)
            await hub.settled()
            assert hub.slack.shows(ALICE) == EMPTY_STATUS
            # The echo of "On a call" reaches the writer only now.
            await hub.writer.on_status_changed(ALICE, ours)
            await hub.phone(EXT, CONNECTED)
            await hub.until(hub.now() + 5)
            await hub.settled()
            assert hub.slack.shows(ALICE) == CALL
            assert hub.slack.writes_of(ALICE) == [CALL, EMPTY_STATUS, CALL]

    virtual(body)
