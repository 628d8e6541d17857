"""Pure status policy: from availability, preferences and the live Slack status to one decision."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from bot.presence import Availability, CallDirection, CallParty

STATUS_TEXT_LIMIT: Final = 100
"""Slack refuses a longer `status_text` with `too_long`."""

_ELLIPSIS: Final = "…"
# Characters that belong to the character before them (or, for ZWJ, join it to the next one).
_ZWJ: Final = "\u200d"
_VARIATION_SELECTORS: Final = frozenset({"\ufe0e", "\ufe0f"})
_EMOJI_MODIFIERS: Final = range(0x1F3FB, 0x1F400)
_FLAG_LETTERS: Final = range(0x1F1E6, 0x1F200)

StatusKind = Literal["call", "meeting"]


class StatusPolicy(StrEnum):
    """What to do when the person already shows a status of their own."""

    RESPECT = "respect"
    """Write only over an empty status (or our own)."""
    REPLACE = "replace"
    """Save their status, show ours, put theirs back afterwards."""


@dataclass(frozen=True, slots=True)
class SlackStatus:
    """What a profile shows: `expiration` is unix seconds, 0 for never."""

    text: str = ""
    emoji: str = ""
    expiration: int = 0

    def is_empty(self) -> bool:
        return not self.text and not self.emoji

    def shown_at(self, now: float) -> SlackStatus:
        """What Slack displays at `now`: an expired status is no status at all."""
        if self.expiration and now >= self.expiration:
            return EMPTY_STATUS
        return self

    def same_as(self, other: SlackStatus) -> bool:
        """Same words and emoji; the expiration is ignored because ours is refreshed."""
        return self.text == other.text and self.emoji == other.emoji

    def with_expiration(self, expiration: int) -> SlackStatus:
        return SlackStatus(self.text, self.emoji, expiration)


EMPTY_STATUS: Final = SlackStatus()


@dataclass(frozen=True, slots=True)
class StatusPreferences:
    """One person's choices; the defaults are what someone who never opened settings gets."""

    sync_enabled: bool = True
    paused: bool = False
    policy: StatusPolicy = StatusPolicy.RESPECT
    call_text: str = "On a call"
    call_emoji: str = ":telephone_receiver:"
    meeting_text: str = "In a meeting"
    meeting_emoji: str = ":spiral_calendar_pad:"
    sync_meetings: bool = True
    call_types: bool = False
    """Word the call status by call type (below, then the built-in phrases); off: `call_text`."""
    external_call_text: str = ""
    internal_call_text: str = ""
    inbound_call_text: str = ""
    outbound_call_text: str = ""
    snooze: bool = False
    """Snooze Slack notifications while on a call."""
    huddle_busy: bool = False
    """Show RingCentral Busy while in a Slack huddle."""


DEFAULT_PREFERENCES: Final = StatusPreferences()


@dataclass(frozen=True, slots=True)
class CallType:
    """What is known of the call someone is on; None where RingCentral did not say."""

    direction: CallDirection | None = None
    party: CallParty | None = None


_DIRECTION_WORDS: Final = {CallDirection.INBOUND: "incoming", CallDirection.OUTBOUND: "outgoing"}


@dataclass(frozen=True, slots=True)
class Claim:
    """Our hold on someone's status while we show ours."""

    saved: SlackStatus
    """What they had before; put back afterwards."""
    written: SlackStatus
    """What we last wrote, with its expiration."""


@dataclass(frozen=True, slots=True)
class Show:
    """Show `status` (expiration 0 here: the scheduler chooses it).

    `save` is the status to keep in a new claim; None means a claim exists and keeps its own.
    """

    kind: StatusKind
    status: SlackStatus
    save: SlackStatus | None


@dataclass(frozen=True, slots=True)
class Release:
    """Our reason to show a status is over: put `restore` back (empty if the saved one expired)."""

    restore: SlackStatus


@dataclass(frozen=True, slots=True)
class Drop:
    """Forget the claim without writing anything."""

    reason: Literal["manual_change", "expired"] = "manual_change"
    """`manual_change`: the person changed their status by hand, which always wins.
    `expired`: our status expired by itself and there is nothing to put back."""


@dataclass(frozen=True, slots=True)
class Leave:
    """Nothing to do."""


Decision = Show | Release | Drop | Leave


def decide(
    availability: Availability,
    prefs: StatusPreferences,
    live: SlackStatus,
    claim: Claim | None,
    now: float,
    *,
    declined: bool = False,
    call: CallType | None = None,
) -> Decision:
    """The one thing to do about a person's Slack status now (`now` in unix seconds).

    `live` is the profile's status as last read or reported, with its expiration; `claim` is
    ours if we hold one, and it must be on the profile (a claim whose first write has not
    landed yet is not one). A claim is ended by a manual change as soon as we see one, before
    anything else, so we never write over (or restore over) what the person chose. `declined`
    says the person already refused our status for this call: nothing is wanted until it ends.
    `call` is what is known of the call, for wording by call type.
    """
    shown = live.shown_at(now)
    wanted = None if declined else _wanted(availability, prefs, call)
    if claim is not None:
        if not _still_ours(shown, claim, now):
            return Drop("manual_change")
        if wanted is not None:
            kind, status = wanted
            return Show(kind, status, None)
        restore = claim.saved.shown_at(now)
        if shown.is_empty() and restore.is_empty():
            # Our expiration already cleared the profile, which is exactly the restore.
            return Drop("expired")
        return Release(restore)
    if wanted is None:
        return Leave()
    kind, status = wanted
    if shown.is_empty():
        return Show(kind, status, EMPTY_STATUS)
    if prefs.policy is StatusPolicy.REPLACE:
        return Show(kind, status, shown)
    return Leave()


def call_status(prefs: StatusPreferences, call: CallType | None = None) -> SlackStatus:
    """The status shown during a call, with the person's text and emoji.

    With wording by call type on, the text is the most specific one known: the party's
    (internal, external), then the direction's (inbound, outbound), each as set by the person or
    their workspace, else a built-in phrase naming what is known ("On an incoming external call").
    """
    text = prefs.call_text
    if prefs.call_types and call is not None:
        text = _call_type_text(prefs, call) or text
    return _status(text, prefs.call_emoji, DEFAULT_PREFERENCES.call_text)


def _call_type_text(prefs: StatusPreferences, call: CallType) -> str:
    party = {
        CallParty.EXTERNAL: prefs.external_call_text,
        CallParty.INTERNAL: prefs.internal_call_text,
        None: "",
    }[call.party]
    direction = {
        CallDirection.INBOUND: prefs.inbound_call_text,
        CallDirection.OUTBOUND: prefs.outbound_call_text,
        None: "",
    }[call.direction]
    if party.strip() or direction.strip():
        return party if party.strip() else direction
    words = [
        _DIRECTION_WORDS[call.direction] if call.direction is not None else "",
        call.party.value if call.party is not None else "",
    ]
    described = " ".join(word for word in words if word)
    if not described:
        return ""
    article = "an" if described[0] in "aeiou" else "a"
    return f"On {article} {described} call"


def meeting_status(prefs: StatusPreferences) -> SlackStatus:
    """The status shown during a meeting, with the person's text and emoji."""
    return _status(prefs.meeting_text, prefs.meeting_emoji, DEFAULT_PREFERENCES.meeting_text)


def fit_status_text(text: str, limit: int = STATUS_TEXT_LIMIT) -> str:
    """`text` cut to `limit` characters with an ellipsis, never inside an emoji or an accent."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = _cluster_boundary(text, limit - len(_ELLIPSIS))
    return text[:cut].rstrip() + _ELLIPSIS


def _wanted(
    availability: Availability, prefs: StatusPreferences, call: CallType | None
) -> tuple[StatusKind, SlackStatus] | None:
    if not prefs.sync_enabled or prefs.paused:
        return None
    if availability is Availability.ON_CALL:
        return "call", call_status(prefs, call)
    if availability is Availability.IN_MEETING and prefs.sync_meetings:
        return "meeting", meeting_status(prefs)
    # Ringing is never written: most rings end before a status could be seen, and each write
    # spends budget that a real call needs.
    return None


def _still_ours(shown: SlackStatus, claim: Claim, now: float) -> bool:
    if shown.same_as(claim.written):
        return True
    # Empty because our own expiration passed is still ours; empty before it is a manual clear.
    return shown.is_empty() and claim.written.shown_at(now).is_empty()


def _status(text: str, emoji: str, default_text: str) -> SlackStatus:
    text = fit_status_text(text)
    emoji = emoji.strip()
    if not text and not emoji:
        # Empty text and emoji would be a request to clear the status, not to show one.
        text = default_text
    return SlackStatus(text, emoji)


def _cluster_boundary(text: str, position: int) -> int:
    """The last position at or before `position` that does not split a character cluster."""
    # An approximation of Unicode grapheme boundaries that covers what people put in a status:
    # combining accents, emoji modifiers and variation selectors, ZWJ sequences, and flags.
    while position > 0 and (_extends(text[position]) or text[position - 1] == _ZWJ):
        position -= 1
    flag_letters = 0
    while flag_letters < position and ord(text[position - flag_letters - 1]) in _FLAG_LETTERS:
        flag_letters += 1
    if flag_letters % 2 and position < len(text) and ord(text[position]) in _FLAG_LETTERS:
        position -= 1
    return position


def _extends(char: str) -> bool:
    return (
        char == _ZWJ
        or char in _VARIATION_SELECTORS
        or ord(char) in _EMOJI_MODIFIERS
        or unicodedata.combining(char) != 0
        or unicodedata.category(char) == "Me"
    )


__all__ = [
    "DEFAULT_PREFERENCES",
    "EMPTY_STATUS",
    "STATUS_TEXT_LIMIT",
    "CallType",
    "Claim",
    "Decision",
    "Drop",
    "Leave",
    "Release",
    "Show",
    "SlackStatus",
    "StatusKind",
    "StatusPolicy",
    "StatusPreferences",
    "call_status",
    "decide",
    "fit_status_text",
    "meeting_status",
]
