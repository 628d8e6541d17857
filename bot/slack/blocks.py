"""Pure Block Kit builders for every /rcstatus reply, DM and the App Home, within Slack's limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from bot.policy import CallType, StatusPolicy, StatusPreferences, call_status, meeting_status
from bot.presence import Availability, CallDirection, CallParty
from bot.slack.command_text import (
    DEFAULT_WATCH_DURATION,
    MAX_ACTIVE_WATCHES,
    MAX_LOOKUP_TARGETS,
    MAX_STARRED,
    MAX_WATCH_DURATION,
    DefaultChange,
    SetFlag,
    SetPolicy,
    SetShare,
    SetStatusEmoji,
    SetStatusText,
    SetSync,
    SettingChange,
    Target,
    describe_target,
)
from bot.slack.kit import MESSAGE_BLOCK_LIMIT, Block, Message
from bot.slack.kit import button as _button
from bot.slack.kit import context as _context
from bot.slack.kit import escape as _escape
from bot.slack.kit import header as _header
from bot.slack.kit import join as _join
from bot.slack.kit import message as _message
from bot.slack.kit import plain as _plain
from bot.slack.kit import section as _section

HOME_BLOCK_LIMIT: Final = 100

# Action ids the listeners register; the values carry a Slack user id.
NOTIFY_ACTION: Final = "notify_when_free"
CANCEL_WATCH_ACTION: Final = "cancel_watch"
CONNECT_ACTION: Final = "connect"
SYNC_PAUSE_ACTION: Final = "sync_pause"
SYNC_RESUME_ACTION: Final = "sync_resume"
POLICY_RESPECT_ACTION: Final = "policy_respect"
POLICY_REPLACE_ACTION: Final = "policy_replace"
STAR_ACTION: Final = "star"
# One per switch; the button's value is what to set it to ("on" or "off").
FLAG_ACTIONS: Final = MappingProxyType(
    {
        "sync_meetings": "toggle_sync_meetings",
        "snooze": "toggle_snooze",
        "huddle_busy": "toggle_huddle_busy",
        "call_types": "toggle_call_types",
    }
)
_FLAG_BUTTONS: Final = MappingProxyType(
    {
        "sync_meetings": "meetings",
        "snooze": "snooze during calls",
        "huddle_busy": "huddle → Busy",
        "call_types": "wording by call type",
    }
)
UNSTAR_ACTION: Final = "unstar"

_SYMBOLS: Final = MappingProxyType(
    {
        Availability.AVAILABLE: "✅",
        Availability.RINGING: "🔔",
        Availability.ON_CALL: "📞",
        Availability.IN_MEETING: "📅",
        Availability.DND: "⛔",
        Availability.BUSY: "🔴",
        Availability.OFFLINE: "⚫",
        Availability.HIDDEN: "🔒",
    }
)
_HIDDEN_WORDS: Final = "doesn't share phone presence"
_UNLINKED_WORDS: Final = "not linked to a RingCentral extension"
# How long someone has been this way is news only while they are busy; "available for 3 h"
# or "offline for 2 d" would only say when the bot last heard.
_TIMED: Final = frozenset(
    {
        Availability.ON_CALL,
        Availability.RINGING,
        Availability.IN_MEETING,
        Availability.DND,
        Availability.BUSY,
    }
)
_WAS_WORDS: Final = MappingProxyType(
    {
        Availability.ON_CALL: "on the phone",
        Availability.RINGING: "on the phone",
        Availability.IN_MEETING: "in a meeting",
        Availability.DND: "on do not disturb",
        Availability.OFFLINE: "offline",
    }
)
_SOURCE: Final = "Phone presence from RingCentral"
_FOOTER: Final = f"{_SOURCE}. Only you can see this."


class SyncState(StrEnum):
    """Where someone's status sync stands, in the order a reply explains it."""

    NOT_CONNECTED = "not_connected"
    """No Slack token from them yet: nothing can be written."""
    ON = "on"
    PAUSED = "paused"
    OFF = "off"


class NotifyRefusal(StrEnum):
    """Why a watch was not started."""

    ALREADY_FREE = "already_free"
    HIDDEN = "hidden"
    NOT_LINKED = "not_linked"
    YOURSELF = "yourself"
    TOO_MANY = "too_many"


@dataclass(frozen=True, slots=True)
class PersonView:
    """One person as a reply shows them; `availability` None means not linked to an extension."""

    user_id: str
    availability: Availability | None
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class WatchView:
    """One of my watches: active until `expires_at`, or expired without them becoming free."""

    target_id: str
    expires_at: datetime
    expired: bool = False


@dataclass(frozen=True, slots=True)
class HomeState:
    """Everything the App Home shows for one person."""

    me: PersonView
    connected: bool
    preferences: StatusPreferences
    install_url: str
    watches: tuple[WatchView, ...] = ()
    starred: tuple[PersonView, ...] = ()


def sync_state(connected: bool, preferences: StatusPreferences) -> SyncState:
    """The state a reply explains: connecting comes first, then off before paused."""
    if not connected:
        return SyncState.NOT_CONNECTED
    if not preferences.sync_enabled:
        return SyncState.OFF
    if preferences.paused:
        return SyncState.PAUSED
    return SyncState.ON


def humanize_duration(delta: timedelta) -> str:
    """`just now`, `3 min`, `1 h 5 min`, `2 d 3 h`: whole units, rounded down."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return "just now"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86_400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        rest = minutes % 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours % 24
    return f"{days} d {rest} h" if rest else f"{days} d"


def slack_date(moment: datetime, *, now: datetime) -> str:
    """`moment` in each reader's own time zone: the time, with the day when it is not soon."""
    moment, now = _aware(moment), _aware(now)
    timestamp = int(moment.timestamp())
    if abs(moment - now) < timedelta(hours=12):
        pattern, fallback = "{time}", moment.strftime("%H:%M UTC")
    else:
        pattern, fallback = "{date_short_pretty} at {time}", moment.strftime("%b %d, %H:%M UTC")
    return f"<!date^{timestamp}^{pattern}|{fallback}>"


def availability_line(
    availability: Availability | None, since: datetime | None, *, now: datetime
) -> str:
    """`📞 On a call · 12 min`, `✅ Available`, `🔒 doesn't share phone presence`…"""
    if availability is None:
        return _UNLINKED_WORDS
    if availability is Availability.HIDDEN:
        return f"{_SYMBOLS[availability]} {_HIDDEN_WORDS}"
    line = f"{_SYMBOLS[availability]} {availability.label}"
    if since is not None and availability in _TIMED:
        line += f" · {humanize_duration(_aware(now) - _aware(since))}"
    return line


def can_notify(person: PersonView) -> bool:
    """Whether a watch on them makes sense: linked, sharing presence, and not free already."""
    return person.availability not in (None, Availability.AVAILABLE, Availability.HIDDEN)


def lookup_reply(
    people: Sequence[PersonView], *, now: datetime, not_found: Sequence[Target] = ()
) -> Message:
    """The answer to `/rcstatus @alice @bob`: one section per person, a notify button if busy."""
    blocks: list[Block] = []
    lines: list[str] = []
    for index, person in enumerate(people[:MAX_LOOKUP_TARGETS]):
        line = f"<@{person.user_id}> — {_person_line(person, now)}"
        lines.append(line)
        section = _section(line, block_id=f"person-{index}")
        if can_notify(person):
            section["accessory"] = _button(
                "Notify me when free", NOTIFY_ACTION, value=person.user_id, style="primary"
            )
        blocks.append(section)
    if not_found:
        missing = _join([_escape(describe_target(target)) for target in not_found])
        line = f"I couldn't find anyone with {missing} in this workspace."
        lines.append(line)
        blocks.append(_section(line, block_id="not-found"))
    if not blocks:
        return help_reply("Who should I look up? Try `/rcstatus @alice`.")
    blocks.append(_context(_FOOTER))
    return _message("\n".join(lines), blocks)


def me_reply(
    me: PersonView,
    *,
    connected: bool,
    preferences: StatusPreferences,
    install_url: str,
    now: datetime,
) -> Message:
    """`/rcstatus` alone: my phone, my status sync, and the next thing to do."""
    if me.availability is None:
        phone = (
            "*Your phone:* you're not linked to a RingCentral extension yet. "
            "Type `/rcstatus link` and your extension number (like `/rcstatus link 101`), "
            "or ask a workspace admin."
        )
    else:
        phone = f"*Your phone:* {_person_line(me, now)}"
    state = sync_state(connected, preferences)
    sync = f"*Status sync:* {_sync_words(state, preferences)}\n{_next_step(state)}"
    sync_section = _section(sync, block_id="sync")
    if state is SyncState.NOT_CONNECTED:
        sync_section["accessory"] = _connect_button(install_url)
    blocks = [_section(phone, block_id="phone"), sync_section, _context(_FOOTER)]
    return _message(f"{phone}\n{sync}", blocks)


def connect_reply(install_url: str, *, connected: bool) -> Message:
    """`/rcstatus connect`: the install page, or word that it is already done."""
    if connected:
        text = (
            "✅ Your Slack status is connected. Connect again only if I've told you "
            "the connection stopped working."
        )
    else:
        text = (
            "🔌 Press *Connect* and approve, and I'll show 📞 On a call in your Slack status "
            "while you're on the phone, then put your own status back."
        )
    section = _section(text, block_id="connect")
    section["accessory"] = _connect_button(install_url)
    return _message(text, [section])


def notify_confirmation(
    target_id: str, until: datetime, *, now: datetime, extended: bool = False
) -> Message:
    """`I'll DM you when <@U…> is free (until 5:40 PM).`"""
    already = "still " if extended else ""
    text = (
        f"🔔 I'll {already}DM you when <@{target_id}> is free (until {slack_date(until, now=now)})."
    )
    section = _section(text, block_id="watch")
    section["accessory"] = _button("Cancel", CANCEL_WATCH_ACTION, value=target_id)
    return _message(text, [section])


def notify_refusal(
    target_id: str, reason: NotifyRefusal, *, limit: int = MAX_ACTIVE_WATCHES
) -> Message:
    """Why no watch was started on `target_id`."""
    texts = {
        NotifyRefusal.ALREADY_FREE: f"✅ <@{target_id}> is available now; no need to wait.",
        NotifyRefusal.HIDDEN: (
            f"🔒 <@{target_id}> doesn't share phone presence, so I can't tell when they're free."
        ),
        NotifyRefusal.NOT_LINKED: (
            f"<@{target_id}> is {_UNLINKED_WORDS}, so I can't tell when they're free."
        ),
        NotifyRefusal.YOURSELF: "That's you! I'll let you decide when you're free.",
        NotifyRefusal.TOO_MANY: (
            f"⏳ You're already watching {limit} people, the most I keep for one person. "
            "See them with `/rcstatus watches` and cancel one first."
        ),
    }
    text = texts[reason]
    return _message(text, [_section(text)])


def cancel_reply(target_id: str, *, cancelled: bool) -> Message:
    """The answer to `cancel @alice` or its button."""
    if cancelled:
        text = f"Done: I stopped watching <@{target_id}>."
    else:
        text = f"You weren't watching <@{target_id}>."
    return _message(text, [_section(text)])


def free_dm(
    target_id: str, *, was: Availability | None, busy_since: datetime | None, now: datetime
) -> Message:
    """`<@U…> is free now — they were on the phone for 14 min.`"""
    text = f"✅ <@{target_id}> is free now"
    if busy_since is not None:
        how = _WAS_WORDS.get(was, "busy") if was is not None else "busy"
        spent = humanize_duration(_aware(now) - _aware(busy_since))
        text += f" — they were {how} for {'under a minute' if spent == 'just now' else spent}"
    text += "."
    return _message(text, [_section(text)])


def watch_expired_dm(target_id: str) -> Message:
    """Once, when a watch ends without the person becoming free."""
    text = f"⏳ I stopped watching <@{target_id}>: they were still busy when your watch ended."
    section = _section(text, block_id="expired")
    section["accessory"] = _button("Watch again", NOTIFY_ACTION, value=target_id)
    return _message(text, [section])


def watches_reply(watches: Sequence[WatchView], *, now: datetime) -> Message:
    """`watches`: the active ones with a Cancel button each, the expired ones once."""
    blocks = _watch_blocks(watches, now=now, room=MESSAGE_BLOCK_LIMIT - 1)
    active = [watch for watch in watches if not watch.expired]
    if active:
        text = f"You're watching {_count(len(active), 'person', 'people')}."
        blocks.insert(0, _section(f"*{text}* I'll DM you once when each one is free."))
    else:
        text = "You aren't watching anyone."
    return _message(text, blocks)


def settings_reply(
    preferences: StatusPreferences,
    *,
    connected: bool,
    saved: SettingChange | None = None,
    share: bool = True,
    reconnect_for_snooze: str | None = None,
) -> Message:
    """`settings`: what I do with your status, with buttons for the policy. With
    `reconnect_for_snooze` (the connect page), a word that snoozing needs a new permission."""
    lines: list[str] = []
    if saved is not None:
        lines.append(f"✅ Saved: {_describe_change(saved, preferences)}")
    if reconnect_for_snooze is not None:
        lines.append(
            "⚠️ To snooze your notifications I need a permission you have not given yet: "
            f"<{reconnect_for_snooze}|connect again>."
        )
    state = sync_state(connected, preferences)
    call = call_status(preferences)
    meeting = meeting_status(preferences)
    lines += [
        f"*Status sync:* {_sync_words(state, preferences)}",
        f"*When you already have a status:* {_policy_words(preferences.policy)}",
        f"*During calls:* {_escape(call.emoji)} {_escape(call.text)}",
        "*During meetings:* "
        + (
            f"{_escape(meeting.emoji)} {_escape(meeting.text)}"
            if preferences.sync_meetings
            else "your status is left alone"
        ),
        f"*Other systems (the availability API):* {_share_words(share)}",
        *_control_lines(preferences),
    ]
    text = "\n".join(lines)
    blocks = [
        _section(text, block_id="settings"),
        _policy_actions(preferences.policy),
        _context(
            "Change them: `/rcstatus settings policy replace`, "
            "`/rcstatus settings text Busy on the phone`, `/rcstatus settings emoji :phone:`, "
            "`/rcstatus settings meeting text Presenting`, `/rcstatus settings text default`, "
            "`/rcstatus settings meetings off`, `/rcstatus settings snooze on`, "
            "`/rcstatus settings huddle busy`, `/rcstatus settings calltypes on`, "
            "`/rcstatus settings external text With a customer`, "
            "`/rcstatus settings sync off`, `/rcstatus settings share off`."
        ),
    ]
    return _message(text, blocks)


def _control_lines(preferences: StatusPreferences, *, whose: str = "your") -> list[str]:
    already = "you are" if whose == "your" else "they are"
    lines = [
        "*Notifications during calls:* "
        + (
            f"snoozed, unless {already} already in Do Not Disturb"
            if preferences.snooze
            else "as usual"
        ),
        "*In a Slack huddle:* "
        + (
            f"{whose} RingCentral presence shows Busy, and goes back afterwards"
            if preferences.huddle_busy
            else f"{whose} RingCentral presence is left alone"
        ),
    ]
    if preferences.call_types:
        samples = [
            (CallDirection.INBOUND, CallParty.EXTERNAL),
            (CallDirection.OUTBOUND, CallParty.INTERNAL),
        ]
        shown = ", ".join(
            f'"{_escape(call_status(preferences, CallType(direction, party)).text)}"'
            for direction, party in samples
        )
        lines.append(f"*Wording by call type:* on (for example {shown})")
    else:
        lines.append("*Wording by call type:* off")
    return lines


def admin_defaults_reply(preferences: StatusPreferences, saved: DefaultChange | None) -> Message:
    """`admin defaults`: what everyone who has not chosen for themselves gets."""
    lines: list[str] = []
    if saved is not None:
        lines.append(f"✅ Saved for the workspace: {_describe_change(saved, preferences)}")
    call = call_status(preferences)
    meeting = meeting_status(preferences)
    lines += [
        "*Workspace defaults* (anyone's own setting wins):",
        f"*During calls:* {_escape(call.emoji)} {_escape(call.text)}",
        "*During meetings:* "
        + (
            f"{_escape(meeting.emoji)} {_escape(meeting.text)}"
            if preferences.sync_meetings
            else "statuses are left alone"
        ),
        *_control_lines(preferences, whose="people's"),
    ]
    text = "\n".join(lines)
    blocks = [
        _section(text, block_id="admin_defaults"),
        _context(
            "Change them: `/rcstatus admin defaults text On the phone`, "
            "`/rcstatus admin defaults emoji :phone:`, `/rcstatus admin defaults meetings off`, "
            "`/rcstatus admin defaults snooze on`, `/rcstatus admin defaults huddle busy`, "
            "`/rcstatus admin defaults calltypes on`, "
            "`/rcstatus admin defaults internal text On a call with a colleague`; "
            "`default` puts the built-in choice back."
        ),
    ]
    return _message(text, blocks)


def admin_refusal() -> Message:
    text = "Only workspace admins and owners can change the workspace defaults."
    return _message(text, [_section(text)])


def sync_reply(state: SyncState, preferences: StatusPreferences, *, install_url: str) -> Message:
    """The answer to `pause`, `resume`, `settings sync` and their buttons."""
    text = f"*Status sync:* {_sync_words(state, preferences)}\n{_next_step(state)}"
    section = _section(text, block_id="sync")
    if state is SyncState.NOT_CONNECTED:
        section["accessory"] = _connect_button(install_url)
    return _message(text, [section])


def help_reply(reason: str | None = None) -> Message:
    """Every subcommand with an example; `reason` first, when something was not understood."""
    commands = "\n".join(
        [
            "• `/rcstatus @alice @bob` — their phone availability "
            f"(up to {MAX_LOOKUP_TARGETS} people; an email address or extension number works too)",
            "• `/rcstatus` — your own phone and your status sync",
            "• `/rcstatus notify @alice for 2h` — a DM once they're free "
            f"({_hours(DEFAULT_WATCH_DURATION)} if you don't say, at most "
            f"{_hours(MAX_WATCH_DURATION)}, {MAX_ACTIVE_WATCHES} people at a time)",
            "• `/rcstatus cancel @alice` — stop watching someone",
            "• `/rcstatus watches` — who you're watching",
            "• `/rcstatus link 101` — link yourself to extension 101 (at once when it's "
            "yours by email, otherwise an admin approves); admins can "
            "`/rcstatus link @alice 101` and `/rcstatus unlink @alice`",
            "• `/rcstatus pause` and `/rcstatus resume` — stop or restart changing your status",
            "• `/rcstatus settings` — respect or replace a status you set yourself, and the "
            "words and emoji to show (`/rcstatus settings text Busy on the phone`, "
            "`/rcstatus settings emoji :phone:`); `/rcstatus settings meetings off`, "
            "`/rcstatus settings snooze on` (quiet Slack during calls), "
            "`/rcstatus settings huddle busy` (RingCentral Busy during huddles), "
            '`/rcstatus settings calltypes on` ("On an incoming external call")',
            "• `/rcstatus admin defaults` — workspace admins: everyone's defaults",
            "• `/rcstatus connect` — let me update your Slack status",
            "• `/rcstatus help` — this list",
        ]
    )
    blocks: list[Block] = []
    lines: list[str] = []
    if reason is not None:
        sorry = f"🤔 {_escape(reason)}"
        lines.append(sorry)
        blocks.append(_section(sorry, block_id="reason"))
    intro = "*Here's what I can do:*" if reason is not None else "*/rcstatus* can:"
    lines.append(f"{intro}\n{commands}")
    blocks.append(_section(lines[-1], block_id="commands"))
    return _message("\n".join(lines), blocks)


def not_found_reply(target: Target) -> Message:
    """A person named by email or extension that matches nobody here."""
    text = f"I couldn't find anyone with {_escape(describe_target(target))} in this workspace."
    return _message(text, [_section(text)])


def home_view(home: HomeState, *, now: datetime) -> dict[str, Any]:
    """The App Home tab: connection, sync and policy, watches, and the starred board."""
    prefs = home.preferences
    state = sync_state(home.connected, prefs)
    if home.me.availability is None:
        phone = (
            "*Your phone:* not linked to a RingCentral extension. "
            "Type `/rcstatus link 101` with your extension number, or ask a workspace admin."
        )
    else:
        phone = f"*Your phone:* {_person_line(home.me, now)}"
    connection = _section(
        f"*Status sync:* {_sync_words(state, prefs)}\n{_next_step(state)}", block_id="sync"
    )
    if state is SyncState.NOT_CONNECTED:
        connection["accessory"] = _connect_button(home.install_url)
    sync_button = (
        _button("Pause", SYNC_PAUSE_ACTION, value="pause")
        if prefs.sync_enabled and not prefs.paused
        else _button("Turn on", SYNC_RESUME_ACTION, value="resume", style="primary")
    )
    controls = _policy_actions(prefs.policy)
    controls["block_id"] = "controls"
    controls["elements"].insert(0, sync_button)
    top: list[Block] = [
        _header("Your phone status"),
        _section(phone, block_id="phone"),
        connection,
        _section(
            f"*When you already have a status:* {_policy_words(prefs.policy)}",
            block_id="policy-words",
        ),
        controls,
        _section("\n".join(_control_lines(prefs)), block_id="extras"),
        _flag_actions(prefs),
        {"type": "divider"},
        _header("Watching"),
    ]
    star_top: list[Block] = [{"type": "divider"}, _header("Starred colleagues")]
    star_picker: Block = {
        "type": "actions",
        "block_id": "star-picker",
        "elements": [
            {
                "type": "users_select",
                "action_id": STAR_ACTION,
                "placeholder": _plain("Star a colleague"),
            }
        ],
    }
    footer = _context(f"{_SOURCE} · updated {slack_date(now, now=now)}")
    fixed = len(top) + len(star_top) + 2  # the picker and the footer
    watch_room = min(MAX_ACTIVE_WATCHES + 2, (HOME_BLOCK_LIMIT - fixed) // 2)
    watches = _watch_blocks(home.watches, now=now, room=watch_room)
    stars = _star_blocks(home.starred, now=now, room=HOME_BLOCK_LIMIT - fixed - len(watches))
    blocks = [*top, *watches, *star_top, *stars, star_picker, footer]
    return {"type": "home", "blocks": blocks}


def _watch_blocks(watches: Sequence[WatchView], *, now: datetime, room: int) -> list[Block]:
    active = [watch for watch in watches if not watch.expired]
    expired = [watch for watch in watches if watch.expired]
    room -= 1 if expired else 0
    # When they do not all fit, the last place goes to a line saying how many are missing.
    shown = active if len(active) <= room else active[: max(room - 1, 0)]
    blocks: list[Block] = []
    for index, watch in enumerate(shown):
        section = _section(
            f"🔔 <@{watch.target_id}> · until {slack_date(watch.expires_at, now=now)}",
            block_id=f"watch-{index}",
        )
        section["accessory"] = _button("Cancel", CANCEL_WATCH_ACTION, value=watch.target_id)
        blocks.append(section)
    if len(shown) < len(active):
        blocks.append(_context(f"…and {len(active) - len(shown)} more: `/rcstatus watches`."))
    if expired:
        names = _join([f"<@{watch.target_id}>" for watch in expired[:40]])
        more = f" and {len(expired) - 40} more" if len(expired) > 40 else ""
        blocks.append(_context(f"⏳ Expired before they were free: {names}{more}."))
    if not blocks:
        blocks.append(
            _context(
                "Nobody yet. Press *Notify me when free* on a lookup, "
                "or type `/rcstatus notify @alice`."
            )
        )
    return blocks


def _star_blocks(starred: Sequence[PersonView], *, now: datetime, room: int) -> list[Block]:
    if not starred:
        return [_context("Star colleagues below to see their phone at a glance.")]
    full = len(starred) >= MAX_STARRED
    room -= 1 if full else 0
    fits = len(starred) <= room
    shown = starred if fits else starred[: max(room - 1, 0)]
    blocks: list[Block] = []
    for index, person in enumerate(shown):
        section = _section(
            f"<@{person.user_id}> — {_person_line(person, now)}", block_id=f"star-{index}"
        )
        section["accessory"] = _button("Unstar", UNSTAR_ACTION, value=person.user_id)
        blocks.append(section)
    if not fits:
        blocks.append(_context(f"…and {len(starred) - len(shown)} more not shown."))
    if full:
        blocks.append(
            _context(f"You follow {MAX_STARRED}, the most a board holds: unstar one first.")
        )
    return blocks


def _person_line(person: PersonView, now: datetime) -> str:
    return availability_line(person.availability, person.since, now=now)


def _sync_words(state: SyncState, preferences: StatusPreferences) -> str:
    status = call_status(preferences)
    if state is SyncState.ON:
        return (
            f"✅ On: your Slack status shows {_escape(status.emoji)} {_escape(status.text)} "
            "while you're on the phone."
        )
    if state is SyncState.PAUSED:
        return "⏸ Paused: I'm not changing your Slack status."
    if state is SyncState.OFF:
        return "⚫ Off: I'm not changing your Slack status."
    return "🔌 Not connected: I can't change your Slack status yet."


def _next_step(state: SyncState) -> str:
    if state is SyncState.ON:
        return "`/rcstatus pause` stops it for a while; `/rcstatus settings` changes the words."
    if state is SyncState.NOT_CONNECTED:
        return "Press *Connect* and approve, and I'll keep your status in step with your phone."
    return "`/rcstatus resume` turns it back on."


def _policy_words(policy: StatusPolicy) -> str:
    if policy is StatusPolicy.REPLACE:
        return "*replace and restore*: I show mine during calls and put yours back afterwards."
    return "*respect it*: I leave a status you set yourself alone."


def _share_words(share: bool) -> str:
    if share:
        return "see whether you're free, like your colleagues do"
    return "see you as hidden"


def _flag_actions(prefs: StatusPreferences) -> Block:
    """A button per switch that says what pressing it does: "Turn snooze during calls on"."""
    elements: list[Block] = []
    for flag, action in FLAG_ACTIONS.items():
        on = bool(getattr(prefs, flag))
        elements.append(
            _button(
                f"Turn {_FLAG_BUTTONS[flag]} {'off' if on else 'on'}",
                action,
                value="off" if on else "on",
            )
        )
    return {"type": "actions", "block_id": "switches", "elements": elements}


def _policy_actions(policy: StatusPolicy) -> Block:
    respect = _button("Respect my status", POLICY_RESPECT_ACTION, value=StatusPolicy.RESPECT)
    replace = _button("Replace and restore", POLICY_REPLACE_ACTION, value=StatusPolicy.REPLACE)
    (respect if policy is StatusPolicy.RESPECT else replace)["style"] = "primary"
    return {"type": "actions", "block_id": "policy", "elements": [respect, replace]}


def _describe_change(change: SettingChange, preferences: StatusPreferences) -> str:
    match change:
        case SetPolicy(policy):
            return f"when you already have a status, {_policy_words(policy)}"
        case SetSync(enabled):
            return "status sync is on." if enabled else "status sync is off."
        case SetShare(enabled):
            return f"other systems {_share_words(enabled)}."
        case SetFlag(flag, enabled):
            return _flag_words(flag, enabled)
        case SetStatusText(kind, text) if kind not in ("call", "meeting"):
            words = _escape(text) if text else "the built-in wording"
            return f"{kind} calls show {words} when wording by call type is on."
        case SetStatusText(kind, _) | SetStatusEmoji(kind, _):
            status = call_status(preferences) if kind == "call" else meeting_status(preferences)
            during = "calls" if kind == "call" else "meetings"
            return (
                f"during {during} your status shows {_escape(status.emoji)} {_escape(status.text)}."
            )


def _flag_words(flag: str, enabled: bool | None) -> str:
    if enabled is None:
        return f"{_FLAG_NAMES[flag]} follows the workspace default."
    return f"{_FLAG_NAMES[flag]} is {'on' if enabled else 'off'}."


_FLAG_NAMES: Final = {
    "sync_meetings": "showing meetings",
    "snooze": "snoozing notifications during calls",
    "huddle_busy": "RingCentral Busy during huddles",
    "call_types": "wording by call type",
}


def _connect_button(install_url: str) -> Block:
    return _button("Connect", CONNECT_ACTION, value="connect", url=install_url, style="primary")


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _hours(duration: timedelta) -> str:
    return f"{int(duration.total_seconds() // 3600)} h"


def _aware(moment: datetime) -> datetime:
    # Store rows read back from SQLite can be naive; they are UTC by construction.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


__all__ = [
    "CANCEL_WATCH_ACTION",
    "CONNECT_ACTION",
    "FLAG_ACTIONS",
    "HOME_BLOCK_LIMIT",
    "MESSAGE_BLOCK_LIMIT",
    "NOTIFY_ACTION",
    "POLICY_REPLACE_ACTION",
    "POLICY_RESPECT_ACTION",
    "STAR_ACTION",
    "SYNC_PAUSE_ACTION",
    "SYNC_RESUME_ACTION",
    "UNSTAR_ACTION",
    "Block",
    "HomeState",
    "Message",
    "NotifyRefusal",
    "PersonView",
    "SyncState",
    "WatchView",
    "availability_line",
    "can_notify",
    "cancel_reply",
    "connect_reply",
    "free_dm",
    "help_reply",
    "home_view",
    "humanize_duration",
    "lookup_reply",
    "me_reply",
    "not_found_reply",
    "notify_confirmation",
    "notify_refusal",
    "settings_reply",
    "slack_date",
    "sync_reply",
    "sync_state",
    "watch_expired_dm",
    "watches_reply",
]
