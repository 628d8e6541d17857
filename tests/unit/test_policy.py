"""The status policy: what to show, when to put a status back, and when a person's choice wins."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.policy import (
    EMPTY_STATUS,
    STATUS_TEXT_LIMIT,
    CallType,
    Claim,
    Decision,
    Drop,
    Leave,
    Release,
    Show,
    SlackStatus,
    StatusPolicy,
    StatusPreferences,
    call_status,
    decide,
    fit_status_text,
)
from bot.presence import Availability, CallDirection, CallParty

NOW = 1_767_225_600.0
CALL = SlackStatus("On a call", ":telephone_receiver:")
MEETING = SlackStatus("In a meeting", ":spiral_calendar_pad:")
LUNCH = SlackStatus("Lunch", ":sandwich:", int(NOW) + 3600)
DEFAULT = StatusPreferences()
REPLACE = StatusPreferences(policy=StatusPolicy.REPLACE)


def ours(status: SlackStatus = CALL, expires_in: int = 600) -> SlackStatus:
    return status.with_expiration(int(NOW) + expires_in)


# ---------------------------------------------------------------------- statuses


def test_an_expired_status_shows_as_none() -> None:
    status = SlackStatus("Lunch", ":sandwich:", int(NOW))
    assert status.shown_at(NOW - 1) == status
    assert status.shown_at(NOW).is_empty()
    assert SlackStatus("Forever", ":x:", 0).shown_at(NOW + 10**9).text == "Forever"


def test_statuses_compare_by_words_and_emoji_only() -> None:
    assert ours(CALL, 60).same_as(ours(CALL, 3600))
    assert not CALL.same_as(MEETING)
    assert SlackStatus("", ":x:").is_empty() is False
    assert EMPTY_STATUS.is_empty()


# ---------------------------------------------------------------------- what to show


@pytest.mark.parametrize(
    ("availability", "expected"),
    [
        (Availability.ON_CALL, Show("call", CALL, EMPTY_STATUS)),
        (Availability.IN_MEETING, Show("meeting", MEETING, EMPTY_STATUS)),
        (Availability.RINGING, Leave()),
        (Availability.AVAILABLE, Leave()),
        (Availability.DND, Leave()),
        (Availability.BUSY, Leave()),
        (Availability.OFFLINE, Leave()),
        (Availability.HIDDEN, Leave()),
    ],
)
def test_only_calls_and_meetings_show_a_status(
    availability: Availability, expected: Decision
) -> None:
    assert decide(availability, DEFAULT, EMPTY_STATUS, None, NOW) == expected


def test_meetings_are_left_alone_when_the_person_turned_them_off() -> None:
    prefs = StatusPreferences(sync_meetings=False)
    assert decide(Availability.IN_MEETING, prefs, EMPTY_STATUS, None, NOW) == Leave()


def test_the_persons_own_words_and_emoji_are_shown() -> None:
    prefs = StatusPreferences(call_text="Phone", call_emoji=":phone:")
    decision = decide(Availability.ON_CALL, prefs, EMPTY_STATUS, None, NOW)
    assert decision == Show("call", SlackStatus("Phone", ":phone:"), EMPTY_STATUS)


def test_empty_words_and_emoji_fall_back_to_the_default_words() -> None:
    prefs = StatusPreferences(call_text="  ", call_emoji="")
    decision = decide(Availability.ON_CALL, prefs, EMPTY_STATUS, None, NOW)
    assert isinstance(decision, Show)
    assert decision.status.text == "On a call"


def test_an_emoji_only_status_is_allowed() -> None:
    prefs = StatusPreferences(call_text="", call_emoji=":phone:")
    decision = decide(Availability.ON_CALL, prefs, EMPTY_STATUS, None, NOW)
    assert decision == Show("call", SlackStatus("", ":phone:"), EMPTY_STATUS)


def test_an_expired_status_of_their_own_counts_as_empty() -> None:
    expired = SlackStatus("Lunch", ":sandwich:", int(NOW) - 1)
    assert decide(Availability.ON_CALL, DEFAULT, expired, None, NOW) == Show(
        "call", CALL, EMPTY_STATUS
    )


# ---------------------------------------------------------------------- respect / replace


def test_respect_leaves_a_status_the_person_set() -> None:
    assert decide(Availability.ON_CALL, DEFAULT, LUNCH, None, NOW) == Leave()


def test_replace_saves_the_persons_status_to_put_it_back_later() -> None:
    assert decide(Availability.ON_CALL, REPLACE, LUNCH, None, NOW) == Show("call", CALL, LUNCH)
    claim = Claim(saved=LUNCH, written=ours())
    assert decide(Availability.AVAILABLE, REPLACE, ours(), claim, NOW) == Release(LUNCH)


def test_a_saved_status_that_has_expired_since_is_not_put_back() -> None:
    saved = SlackStatus("Lunch", ":sandwich:", int(NOW) - 60)
    claim = Claim(saved=saved, written=ours())
    assert decide(Availability.AVAILABLE, REPLACE, ours(), claim, NOW) == Release(EMPTY_STATUS)


# ---------------------------------------------------------------------- claims


def test_a_claim_is_kept_while_the_call_lasts_without_saving_our_own_status() -> None:
    claim = Claim(saved=EMPTY_STATUS, written=ours())
    assert decide(Availability.ON_CALL, DEFAULT, ours(), claim, NOW) == Show("call", CALL, None)


def test_a_call_turning_into_a_meeting_keeps_the_saved_status() -> None:
    claim = Claim(saved=LUNCH, written=ours(CALL))
    assert decide(Availability.IN_MEETING, REPLACE, ours(CALL), claim, NOW) == Show(
        "meeting", MEETING, None
    )


def test_the_end_of_the_call_puts_the_saved_status_back() -> None:
    claim = Claim(saved=EMPTY_STATUS, written=ours())
    assert decide(Availability.AVAILABLE, DEFAULT, ours(), claim, NOW) == Release(EMPTY_STATUS)


def test_ringing_after_a_call_ends_it() -> None:
    claim = Claim(saved=EMPTY_STATUS, written=ours())
    assert decide(Availability.RINGING, DEFAULT, ours(), claim, NOW) == Release(EMPTY_STATUS)


def test_a_status_changed_by_hand_during_the_call_ends_the_claim_without_a_write() -> None:
    claim = Claim(saved=EMPTY_STATUS, written=ours())
    for availability in (Availability.ON_CALL, Availability.AVAILABLE):
        assert decide(availability, DEFAULT, LUNCH, claim, NOW) == Drop("manual_change")


def test_clearing_our_status_by_hand_before_it_expires_is_a_manual_change() -> None:
    claim = Claim(saved=LUNCH, written=ours(expires_in=600))
    assert decide(Availability.AVAILABLE, REPLACE, EMPTY_STATUS, claim, NOW) == Drop(
        "manual_change"
    )


def test_our_status_expired_with_nothing_to_put_back_needs_no_write() -> None:
    claim = Claim(saved=EMPTY_STATUS, written=ours(expires_in=-5))
    assert decide(Availability.AVAILABLE, DEFAULT, EMPTY_STATUS, claim, NOW) == Drop("expired")


def test_our_status_expired_with_a_saved_status_still_puts_it_back() -> None:
    claim = Claim(saved=LUNCH, written=ours(expires_in=-5))
    assert decide(Availability.AVAILABLE, REPLACE, EMPTY_STATUS, claim, NOW) == Release(LUNCH)


def test_our_status_expired_mid_call_is_shown_again() -> None:
    claim = Claim(saved=EMPTY_STATUS, written=ours(expires_in=-5))
    live = ours(expires_in=-5)  # Slack may still report it: it shows as nothing
    assert decide(Availability.ON_CALL, DEFAULT, live, claim, NOW) == Show("call", CALL, None)


@pytest.mark.parametrize(
    "prefs", [StatusPreferences(paused=True), StatusPreferences(sync_enabled=False)]
)
def test_pausing_releases_a_claim_and_otherwise_does_nothing(prefs: StatusPreferences) -> None:
    claim = Claim(saved=EMPTY_STATUS, written=ours())
    assert decide(Availability.ON_CALL, prefs, ours(), claim, NOW) == Release(EMPTY_STATUS)
    assert decide(Availability.ON_CALL, prefs, EMPTY_STATUS, None, NOW) == Leave()


# ---------------------------------------------------------------------- text


def test_long_custom_text_is_cut_to_slacks_limit() -> None:
    prefs = StatusPreferences(call_text="On the phone with a customer " * 10)
    decision = decide(Availability.ON_CALL, prefs, EMPTY_STATUS, None, NOW)
    assert isinstance(decision, Show)
    assert len(decision.status.text) == STATUS_TEXT_LIMIT
    assert decision.status.text.endswith("…")


@pytest.mark.parametrize(
    ("prefix", "tail", "kept"),
    [
        (98, "👩\u200d💻 coding", ""),  # a ZWJ sequence is kept whole or not at all
        (97, "🇫🇷🇩🇪 and more", "🇫🇷"),  # flags are pairs of letters
        (98, "🇫🇷🇩🇪 and more", ""),
        (98, "e\u0301\u0301 accented", ""),  # accents stay with their letter
        (98, "👍🏽 thumbs up", ""),  # a skin tone stays with its emoji
    ],
)
def test_cutting_never_splits_a_character(prefix: int, tail: str, kept: str) -> None:
    assert fit_status_text("x" * prefix + tail) == "x" * prefix + kept + "…"


def test_short_text_is_left_as_it_is() -> None:
    assert fit_status_text("  On a call  ") == "On a call"
    assert fit_status_text("x" * STATUS_TEXT_LIMIT) == "x" * STATUS_TEXT_LIMIT


@given(st.text(max_size=300))
def test_any_text_fits(text: str) -> None:
    assert len(fit_status_text(text)) <= STATUS_TEXT_LIMIT


# ---------------------------------------------------------------------- properties

availabilities = st.sampled_from(list(Availability))
texts = st.sampled_from(["", "Lunch", "On a call", "In a meeting", "Focus", "🌴"])
emojis = st.sampled_from(["", ":sandwich:", ":telephone_receiver:", ":spiral_calendar_pad:"])
expirations = st.sampled_from([0, int(NOW) - 100, int(NOW), int(NOW) + 5, int(NOW) + 3600])
statuses = st.builds(SlackStatus, texts, emojis, expirations)
preferences = st.builds(
    StatusPreferences,
    sync_enabled=st.booleans(),
    paused=st.booleans(),
    policy=st.sampled_from(list(StatusPolicy)),
    sync_meetings=st.booleans(),
)
claims = st.one_of(st.none(), st.builds(Claim, statuses, statuses))


def _writes(decision: Decision) -> bool:
    return isinstance(decision, Show | Release)


@given(availabilities, preferences, statuses, claims)
def test_respect_never_writes_over_a_status_that_is_not_ours(
    availability: Availability, prefs: StatusPreferences, live: SlackStatus, claim: Claim | None
) -> None:
    shown = live.shown_at(NOW)
    foreign = not shown.is_empty() and (claim is None or not shown.same_as(claim.written))
    if prefs.policy is StatusPolicy.RESPECT and foreign:
        assert not _writes(decide(availability, prefs, live, claim, NOW))


@given(availabilities, preferences, statuses, st.builds(Claim, statuses, statuses))
def test_a_manual_change_is_never_overwritten_or_restored_over(
    availability: Availability, prefs: StatusPreferences, live: SlackStatus, claim: Claim
) -> None:
    shown = live.shown_at(NOW)
    expired_ours = shown.is_empty() and claim.written.shown_at(NOW).is_empty()
    if not shown.same_as(claim.written) and not expired_ours:
        assert decide(availability, prefs, live, claim, NOW) == Drop("manual_change")


@given(availabilities, preferences, statuses, claims, st.integers(1, 7200))
@settings(max_examples=300)
def test_show_is_idempotent(
    availability: Availability,
    prefs: StatusPreferences,
    live: SlackStatus,
    claim: Claim | None,
    expires_in: int,
) -> None:
    first = decide(availability, prefs, live, claim, NOW)
    if not isinstance(first, Show):
        return
    saved = first.save if first.save is not None else (claim.saved if claim else EMPTY_STATUS)
    written = first.status.with_expiration(int(NOW) + expires_in)
    # Once written, the same facts ask for the same status again and save nothing new: our
    # own status must never become the "saved" one.
    again = decide(availability, prefs, written, Claim(saved, written), NOW)
    assert again == Show(first.kind, first.status, None)


def test_wording_by_call_type_is_off_by_default_and_names_what_is_known_when_on() -> None:
    external_in = CallType(CallDirection.INBOUND, CallParty.EXTERNAL)
    internal_out = CallType(CallDirection.OUTBOUND, CallParty.INTERNAL)
    assert call_status(DEFAULT, external_in) == CALL
    on = StatusPreferences(call_types=True)
    assert call_status(on, external_in).text == "On an incoming external call"
    assert call_status(on, internal_out).text == "On an outgoing internal call"
    assert call_status(on, CallType(CallDirection.INBOUND)).text == "On an incoming call"
    assert call_status(on, CallType()).text == "On a call"
    # Set texts: the party's first, then the direction's; the emoji stays the call's.
    mine = StatusPreferences(
        call_types=True, external_call_text="With a customer", inbound_call_text="Picked up"
    )
    assert call_status(mine, external_in) == SlackStatus("With a customer", CALL.emoji)
    assert call_status(mine, CallType(CallDirection.INBOUND, CallParty.INTERNAL)).text == (
        "Picked up"
    )
    decision = decide(Availability.ON_CALL, on, EMPTY_STATUS, None, NOW, call=internal_out)
    assert decision == Show(
        "call", SlackStatus("On an outgoing internal call", CALL.emoji), EMPTY_STATUS
    )
