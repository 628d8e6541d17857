"""Block Kit builders: every reply within Slack's limits, and the words each availability gets."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.policy import DEFAULT_PREFERENCES, StatusPolicy, StatusPreferences
from bot.presence import Availability
from bot.slack.blocks import (
    HomeState,
    Message,
    NotifyRefusal,
    PersonView,
    SyncState,
    WatchView,
    availability_line,
    cancel_reply,
    connect_reply,
    free_dm,
    help_reply,
    home_view,
    humanize_duration,
    lookup_reply,
    me_reply,
    not_found_reply,
    notify_confirmation,
    notify_refusal,
    settings_reply,
    slack_date,
    sync_reply,
    sync_state,
    watch_expired_dm,
    watches_reply,
)
from bot.slack.command_text import (
    MAX_ACTIVE_WATCHES,
    EmailTarget,
    ExtensionTarget,
    SetPolicy,
    SetStatusEmoji,
    SetStatusText,
    SetSync,
    parse_command,
)
from bot.slack.link_messages import (
    LINK_APPROVE_ACTION,
    LINK_DENY_ACTION,
    LINK_MOVE_ACTION,
    LinkRefusal,
    RequestReason,
    event_words,
    link_refusal_reply,
    linked_reply,
    move_prompt,
    request_dm,
    request_sent_reply,
    unlinked_reply,
    with_notices,
)
from bot.store import LinkEvent, LinkRequest

NOW = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
INSTALL = "https://rcstatus.example.com/slack/install"

# --- a small validator for what Slack accepts (reference/slack.md §4.2) ---------------------

BLOCK_TYPES = {"section", "context", "actions", "divider", "header"}
TEXT_TYPES = {"plain_text", "mrkdwn"}
ELEMENT_TYPES = {"button", "users_select"}
ID_LIMIT = 255


def check_text(obj: Any, *, limit: int, types: set[str] = TEXT_TYPES) -> None:
    assert isinstance(obj, dict), obj
    assert obj["type"] in types, obj
    assert isinstance(obj["text"], str)
    assert 0 < len(obj["text"]) <= limit, obj
    assert set(obj) <= {"type", "text", "emoji", "verbatim"}, obj


def check_element(element: Any) -> None:
    assert element["type"] in ELEMENT_TYPES, element
    assert 0 < len(element["action_id"]) <= ID_LIMIT
    if element["type"] == "button":
        check_text(element["text"], limit=75, types={"plain_text"})
        assert len(element.get("value", "")) <= 2000
        assert len(element.get("url", "")) <= 3000
        assert element.get("style", "primary") in {"primary", "danger"}
        assert set(element) <= {"type", "action_id", "text", "value", "url", "style"}
    else:
        check_text(element["placeholder"], limit=150, types={"plain_text"})


def check_blocks(blocks: Any, *, limit: int) -> None:
    assert isinstance(blocks, list)
    assert 0 < len(blocks) <= limit
    block_ids = [block["block_id"] for block in blocks if "block_id" in block]
    assert len(block_ids) == len(set(block_ids)), "block_ids must be unique"
    for block in blocks:
        kind = block["type"]
        assert kind in BLOCK_TYPES, block
        assert len(block.get("block_id", "")) <= ID_LIMIT
        if kind == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                check_text(block["text"], limit=3000)
            for item in block.get("fields", []):
                check_text(item, limit=2000)
            assert len(block.get("fields", [])) <= 10
            if "accessory" in block:
                check_element(block["accessory"])
        elif kind == "context":
            assert 0 < len(block["elements"]) <= 10
            for item in block["elements"]:
                check_text(item, limit=3000)
        elif kind == "actions":
            assert 0 < len(block["elements"]) <= 25
            action_ids = [element["action_id"] for element in block["elements"]]
            assert len(action_ids) == len(set(action_ids)), "action_ids unique within a block"
            for element in block["elements"]:
                check_element(element)
        elif kind == "header":
            check_text(block["text"], limit=150, types={"plain_text"})
    json.dumps(blocks)


def check_message(message: Message) -> Message:
    text, blocks = message
    assert isinstance(text, str)
    assert text.strip(), "a top-level fallback text is required"
    assert len(text) <= 3000
    check_blocks(blocks, limit=50)
    return message


def check_home(view: dict[str, Any]) -> dict[str, Any]:
    assert view["type"] == "home"
    assert set(view) <= {"type", "blocks", "private_metadata", "callback_id", "external_id"}
    check_blocks(view["blocks"], limit=100)
    return view


def all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def elements(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for block in blocks:
        if "accessory" in block:
            found.append(block["accessory"])
        if block["type"] == "actions":
            found.extend(block["elements"])
    return found


def actions(blocks: list[dict[str, Any]], action_id: str) -> list[dict[str, Any]]:
    return [element for element in elements(blocks) if element["action_id"] == action_id]


# --- availability words ---------------------------------------------------------------------

LOOKUP_CASES = [
    (Availability.AVAILABLE, "✅ Available", False),
    (Availability.ON_CALL, "📞 On a call · 12 min", True),
    (Availability.RINGING, "🔔 Phone ringing · 12 min", True),
    (Availability.DND, "⛔ Do not disturb · 12 min", True),
    (Availability.IN_MEETING, "📅 In a meeting · 12 min", True),
    (Availability.BUSY, "🔴 Busy · 12 min", True),
    (Availability.OFFLINE, "⚫ Offline", True),
    (Availability.HIDDEN, "🔒 doesn't share phone presence", False),
    (None, "not linked to a RingCentral extension", False),
]


@pytest.mark.parametrize(("availability", "words", "notify"), LOOKUP_CASES)
def test_lookup_words_and_notify_button(
    availability: Availability | None, words: str, notify: bool
) -> None:
    person = PersonView("U0ALICE", availability, since=NOW - timedelta(minutes=12, seconds=40))
    text, blocks = check_message(lookup_reply([person], now=NOW))
    assert words in text
    assert words in blocks[0]["text"]["text"]
    assert "<@U0ALICE>" in blocks[0]["text"]["text"]
    buttons = actions(blocks, "notify_when_free")
    if notify:
        assert [(b["value"], b["text"]["text"]) for b in buttons] == [
            ("U0ALICE", "Notify me when free")
        ]
    else:
        assert buttons == []


def test_lookup_of_several_people_gives_each_a_button_of_their_own() -> None:
    people = [
        PersonView("U1", Availability.ON_CALL, NOW),
        PersonView("U2", Availability.AVAILABLE, NOW),
        PersonView("U3", Availability.IN_MEETING, NOW - timedelta(hours=1, minutes=5)),
    ]
    text, blocks = check_message(
        lookup_reply(
            people, now=NOW, not_found=[EmailTarget("x<y>@example.com"), ExtensionTarget("999")]
        )
    )
    assert [b["value"] for b in actions(blocks, "notify_when_free")] == ["U1", "U3"]
    assert "📅 In a meeting · 1 h 5 min" in text
    assert "x&lt;y&gt;@example.com and extension 999" in text


def test_lookup_of_nobody_falls_back_to_help() -> None:
    text, _ = check_message(lookup_reply([], now=NOW))
    assert "Who should I look up" in text


def test_humanized_durations() -> None:
    assert humanize_duration(timedelta(seconds=-5)) == "just now"
    assert humanize_duration(timedelta(seconds=59)) == "just now"
    assert humanize_duration(timedelta(minutes=3, seconds=59)) == "3 min"
    assert humanize_duration(timedelta(hours=1)) == "1 h"
    assert humanize_duration(timedelta(hours=1, minutes=5)) == "1 h 5 min"
    assert humanize_duration(timedelta(days=2)) == "2 d"
    assert humanize_duration(timedelta(days=2, hours=3, minutes=7)) == "2 d 3 h"


def test_availability_line_accepts_naive_times_as_utc() -> None:
    naive = (NOW - timedelta(minutes=12)).replace(tzinfo=None)
    assert availability_line(Availability.ON_CALL, naive, now=NOW) == "📞 On a call · 12 min"
    assert availability_line(Availability.AVAILABLE, naive, now=NOW) == "✅ Available"


def test_slack_dates_use_each_readers_time_zone_with_a_fallback() -> None:
    soon = NOW + timedelta(minutes=40)
    assert slack_date(soon, now=NOW) == f"<!date^{int(soon.timestamp())}^{{time}}|17:40 UTC>"
    later = NOW + timedelta(hours=20)
    assert "{date_short_pretty} at {time}" in slack_date(later, now=NOW)


# --- me, sync, settings ---------------------------------------------------------------------

PAUSED = StatusPreferences(paused=True)
OFF = StatusPreferences(sync_enabled=False)


@pytest.mark.parametrize(
    ("connected", "prefs", "state", "words", "next_step"),
    [
        (False, DEFAULT_PREFERENCES, SyncState.NOT_CONNECTED, "Not connected", "Connect"),
        (True, DEFAULT_PREFERENCES, SyncState.ON, "✅ On", "/rcstatus pause"),
        (True, PAUSED, SyncState.PAUSED, "⏸ Paused", "/rcstatus resume"),
        (True, OFF, SyncState.OFF, "⚫ Off", "/rcstatus resume"),
        (False, PAUSED, SyncState.NOT_CONNECTED, "Not connected", "Connect"),
    ],
)
def test_me_reply_says_the_sync_state_and_what_to_do_next(
    connected: bool, prefs: StatusPreferences, state: SyncState, words: str, next_step: str
) -> None:
    assert sync_state(connected, prefs) is state
    me = PersonView("U0ME", Availability.ON_CALL, NOW - timedelta(minutes=2))
    text, blocks = check_message(
        me_reply(me, connected=connected, preferences=prefs, install_url=INSTALL, now=NOW)
    )
    assert "📞 On a call · 2 min" in text
    assert words in text
    assert next_step in text
    connect = actions(blocks, "connect")
    if state is SyncState.NOT_CONNECTED:
        assert [button["url"] for button in connect] == [INSTALL]
    else:
        assert connect == []
    sync_text, _ = check_message(sync_reply(state, prefs, install_url=INSTALL))
    assert words in sync_text


def test_me_reply_when_not_linked_says_how_to_link() -> None:
    me = PersonView("U0ME", None)
    text, _ = check_message(
        me_reply(me, connected=True, preferences=DEFAULT_PREFERENCES, install_url=INSTALL, now=NOW)
    )
    assert "not linked" in text
    assert "/rcstatus link 101" in text


def test_settings_show_policy_words_and_emoji_with_the_current_policy_highlighted() -> None:
    prefs = StatusPreferences(
        policy=StatusPolicy.REPLACE, call_text="Busy <b> & on the phone", call_emoji=":phone:"
    )
    text, blocks = check_message(settings_reply(prefs, connected=True))
    assert "replace and restore" in text
    assert ":phone: Busy &lt;b&gt; &amp; on the phone" in text
    assert ":spiral_calendar_pad: In a meeting" in text
    respect, replace = actions(blocks, "policy_respect") + actions(blocks, "policy_replace")
    assert replace.get("style") == "primary"
    assert "style" not in respect


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (SetPolicy(StatusPolicy.RESPECT), "respect it"),
        (SetSync(enabled=False), "status sync is off"),
        (SetStatusText("call", "On the line"), "during calls your status shows"),
        (SetStatusEmoji("meeting", ":tv:"), "during meetings your status shows :tv:"),
    ],
)
def test_settings_confirm_what_was_saved(change: Any, words: str) -> None:
    prefs = StatusPreferences(call_text="On the line", meeting_emoji=":tv:")
    text, _ = check_message(settings_reply(prefs, connected=True, saved=change))
    assert "✅ Saved" in text
    assert words in text


# --- watches and notifications --------------------------------------------------------------


def test_notify_confirmation_names_the_person_and_the_end_in_slack_date_format() -> None:
    until = NOW + timedelta(minutes=40)
    text, blocks = check_message(notify_confirmation("U0ALICE", until, now=NOW))
    assert text.startswith("🔔 I'll DM you when <@U0ALICE> is free (until <!date^")
    assert "|17:40 UTC>)" in text
    assert [b["value"] for b in actions(blocks, "cancel_watch")] == ["U0ALICE"]


@pytest.mark.parametrize("reason", list(NotifyRefusal))
def test_notify_refusals(reason: NotifyRefusal) -> None:
    text, blocks = check_message(notify_refusal("U0ALICE", reason))
    assert actions(blocks, "notify_when_free") == []
    if reason is NotifyRefusal.TOO_MANY:
        assert str(MAX_ACTIVE_WATCHES) in text
    if reason is NotifyRefusal.HIDDEN:
        assert "🔒" in text


@pytest.mark.parametrize(
    ("was", "since", "words"),
    [
        (Availability.ON_CALL, NOW - timedelta(minutes=14), "they were on the phone for 14 min."),
        (Availability.IN_MEETING, NOW - timedelta(hours=1), "they were in a meeting for 1 h."),
        (Availability.DND, NOW - timedelta(seconds=20), "on do not disturb for under a minute."),
        (None, NOW - timedelta(minutes=3), "they were busy for 3 min."),
        (Availability.ON_CALL, None, "is free now."),
    ],
)
def test_free_dm(was: Availability | None, since: datetime | None, words: str) -> None:
    text, _ = check_message(free_dm("U0ALICE", was=was, busy_since=since, now=NOW))
    assert text.startswith("✅ <@U0ALICE> is free now")
    assert text.endswith(words)


def test_watch_expired_dm_offers_to_watch_again() -> None:
    text, blocks = check_message(watch_expired_dm("U0ALICE"))
    assert "⏳" in text
    assert [b["value"] for b in actions(blocks, "notify_when_free")] == ["U0ALICE"]


def test_watches_list_active_with_cancel_and_expired_once() -> None:
    watches = [
        WatchView("U1", NOW + timedelta(hours=2)),
        WatchView("U2", NOW - timedelta(minutes=5), expired=True),
        WatchView("U3", NOW + timedelta(hours=20)),
    ]
    text, blocks = check_message(watches_reply(watches, now=NOW))
    assert text == "You're watching 2 people."
    assert [b["value"] for b in actions(blocks, "cancel_watch")] == ["U1", "U3"]
    rendered = all_text(blocks)
    assert rendered.count("<@U2>") == 1
    assert "⏳ Expired" in rendered


def test_watches_list_when_empty() -> None:
    text, _ = check_message(watches_reply([], now=NOW))
    assert text == "You aren't watching anyone."


def test_a_full_watch_list_stays_within_the_block_limit() -> None:
    watches = [WatchView(f"U{n}", NOW + timedelta(hours=1)) for n in range(80)]
    watches += [WatchView(f"X{n}", NOW, expired=True) for n in range(80)]
    _, blocks = check_message(watches_reply(watches, now=NOW))
    assert "more" in all_text(blocks)


def test_cancel_replies() -> None:
    assert "stopped watching <@U1>" in check_message(cancel_reply("U1", cancelled=True)).text
    assert "weren't watching <@U1>" in check_message(cancel_reply("U1", cancelled=False)).text


# --- link, connect, help --------------------------------------------------------------------


def test_link_results_refusals_and_requests() -> None:
    assert "You're now linked to extension 101" in linked_reply("U1", "101", invoker_id="U1").text
    assert "<@U2> is now linked" in linked_reply("U2", "101", invoker_id="U1").text
    assert "no longer linked to extension 101" in unlinked_reply("U2", "101", invoker_id="U1").text
    for reason in LinkRefusal:
        check_message(link_refusal_reply(reason, extension_number="101", user_id="U2"))
    assert "admins" in link_refusal_reply(LinkRefusal.NOT_ADMIN).text
    assert (
        "extension 101"
        in link_refusal_reply(LinkRefusal.UNKNOWN_EXTENSION, extension_number="101").text
    )
    assert "extension 101" in not_found_reply(ExtensionTarget("101")).text
    sent = check_message(
        request_sent_reply("101", reason=RequestReason.HELD, holder_id="U2", admins=["UA1", "UA2"])
    ).text
    assert "linked to <@U2>" in sent
    assert "<@UA1> and <@UA2>" in sent
    assert "nothing changes until" in sent


def test_an_admins_request_dm_and_move_prompt_carry_their_buttons() -> None:
    request = LinkRequest(7, "T1", "U1", "4001", "U2", NOW, NOW, "pending")
    _, dm_blocks = check_message(request_dm(request, "101", reason=RequestReason.HELD))
    assert [b["value"] for b in actions(dm_blocks, LINK_APPROVE_ACTION)] == ["7"]
    assert [b["value"] for b in actions(dm_blocks, LINK_DENY_ACTION)] == ["7"]
    text, prompt = check_message(
        move_prompt("U1", "101", holder_id="U2", invoker_id="UA", value="U1:4001:U2")
    )
    assert "linked to <@U2>" in text
    assert [b["value"] for b in actions(prompt, LINK_MOVE_ACTION)] == ["U1:4001:U2"]


def test_each_person_is_told_who_changed_their_link() -> None:
    moved = LinkEvent(1, "T1", NOW, "linked", "UA", "U1", "4001", displaced_id="U2")
    numbers = {"4001": "101"}.get
    assert event_words(moved, "U2", numbers).startswith("<@UA> moved extension 101 from you")
    assert event_words(moved, "U1", numbers) == "<@UA> linked you to extension 101"
    denied = LinkEvent(2, "T1", NOW, "denied", "UA", "U1", "4001")
    assert "didn't approve" in event_words(denied, "U1", numbers)
    gone = LinkEvent(3, "T1", NOW, "unlinked", "UA", "U1", "9999")
    assert event_words(gone, "U1", numbers) == "<@UA> unlinked you from a RingCentral extension"
    linked = linked_reply("U1", "101", invoker_id="U1")
    reply = with_notices(linked, [moved], "U2", numbers, now=NOW)
    assert reply.text.startswith("*Your extension link changed:*")
    assert check_message(reply).blocks[0]["block_id"] == "link-news"


def test_connect_reply_carries_the_install_link() -> None:
    for connected in (True, False):
        _, blocks = check_message(connect_reply(INSTALL, connected=connected))
        assert [b["url"] for b in actions(blocks, "connect")] == [INSTALL]


SUBCOMMAND_EXAMPLES = [
    "/rcstatus @alice",
    "/rcstatus notify @alice for 2h",
    "/rcstatus cancel @alice",
    "/rcstatus watches",
    "/rcstatus link 101",
    "/rcstatus link @alice 101",
    "/rcstatus unlink @alice",
    "/rcstatus pause",
    "/rcstatus resume",
    "/rcstatus settings",
    "/rcstatus connect",
    "/rcstatus help",
]


def test_help_lists_every_subcommand_and_shows_the_reason_escaped() -> None:
    text, _ = check_message(help_reply())
    for example in SUBCOMMAND_EXAMPLES:
        assert f"`{example}" in text, example
    reason_text, blocks = check_message(help_reply("I don't know “<!channel>”."))
    assert "&lt;!channel&gt;" in blocks[0]["text"]["text"]
    assert "<!channel>" not in reason_text


def test_help_examples_parse_to_what_they_promise() -> None:
    # The examples in the help text must be commands the parser understands.
    text = help_reply().text
    for example in re.findall(r"`/rcstatus ([^`]*)`", text):
        typed = example.replace("@alice", "<@U0ALICE>").replace("@bob", "<@U0BOB>")
        command = parse_command(typed)
        assert type(command).__name__ != "Help" or typed == "help", example


# --- App Home -------------------------------------------------------------------------------


def make_home(**changes: Any) -> HomeState:
    base: dict[str, Any] = {
        "me": PersonView("U0ME", Availability.AVAILABLE, NOW),
        "connected": True,
        "preferences": DEFAULT_PREFERENCES,
        "install_url": INSTALL,
        "watches": (
            WatchView("U1", NOW + timedelta(hours=1)),
            WatchView("U2", NOW, expired=True),
        ),
        "starred": (
            PersonView("U3", Availability.ON_CALL, NOW - timedelta(minutes=7)),
            PersonView("U4", None),
        ),
    }
    base.update(changes)
    return HomeState(**base)


def test_home_view_has_every_part() -> None:
    view = check_home(home_view(make_home(), now=NOW))
    blocks = view["blocks"]
    rendered = all_text(blocks)
    assert "✅ Available" in rendered
    assert "✅ On" in rendered
    assert actions(blocks, "connect") == []
    assert len(actions(blocks, "sync_pause")) == 1
    assert actions(blocks, "sync_resume") == []
    assert len(actions(blocks, "policy_respect")) == len(actions(blocks, "policy_replace")) == 1
    assert [b["value"] for b in actions(blocks, "cancel_watch")] == ["U1"]
    assert [b["value"] for b in actions(blocks, "unstar")] == ["U3", "U4"]
    assert "📞 On a call · 7 min" in rendered
    assert "not linked to a RingCentral extension" in rendered
    star = actions(blocks, "star")
    assert [element["type"] for element in star] == ["users_select"]


@pytest.mark.parametrize(
    ("connected", "prefs", "pause", "resume"),
    [(False, DEFAULT_PREFERENCES, 1, 0), (True, PAUSED, 0, 1), (True, OFF, 0, 1)],
)
def test_home_view_connect_and_sync_buttons(
    connected: bool, prefs: StatusPreferences, pause: int, resume: int
) -> None:
    view = check_home(home_view(make_home(connected=connected, preferences=prefs), now=NOW))
    blocks = view["blocks"]
    assert len(actions(blocks, "sync_pause")) == pause
    assert len(actions(blocks, "sync_resume")) == resume
    connect = actions(blocks, "connect")
    assert [b["url"] for b in connect] == ([] if connected else [INSTALL])


def test_home_view_with_nothing_to_show() -> None:
    view = check_home(
        home_view(make_home(watches=(), starred=(), me=PersonView("U0", None)), now=NOW)
    )
    rendered = all_text(view["blocks"])
    assert "Nobody yet" in rendered
    assert "Star colleagues" in rendered
    assert "/rcstatus link 101" in rendered


def test_a_huge_home_view_stays_within_the_block_limit() -> None:
    watches = tuple(WatchView(f"W{n}", NOW + timedelta(hours=3)) for n in range(MAX_ACTIVE_WATCHES))
    expired = tuple(WatchView(f"E{n}", NOW, expired=True) for n in range(30))
    starred = tuple(PersonView(f"S{n}", Availability.BUSY, NOW) for n in range(300))
    view = check_home(home_view(make_home(watches=watches + expired, starred=starred), now=NOW))
    blocks = view["blocks"]
    assert len(actions(blocks, "cancel_watch")) == MAX_ACTIVE_WATCHES
    assert len(actions(blocks, "unstar")) > 40
    assert "more not shown" in all_text(blocks)
    assert len(actions(blocks, "star")) == 1


# --- every builder at once ------------------------------------------------------------------

BUILDERS: list[Callable[[], Message]] = [
    lambda: lookup_reply(
        [PersonView(f"U{n}", Availability.ON_CALL, NOW) for n in range(40)], now=NOW
    ),
    lambda: help_reply("x" * 5000),
    lambda: settings_reply(StatusPreferences(call_text="y" * 5000), connected=False),
    lambda: notify_confirmation("U1", NOW + timedelta(hours=24), now=NOW, extended=True),
    lambda: request_sent_reply(
        "1" * 5000, reason=RequestReason.HELD, holder_id="U2", admins=["UA"] * 500
    ),
]


@pytest.mark.parametrize("build", BUILDERS)
def test_oversized_inputs_are_cut_to_fit(build: Callable[[], Message]) -> None:
    check_message(build())


def test_no_builder_shows_a_number_it_was_not_given() -> None:
    # Phone numbers never reach the builders; this guards the fixed wording against digits
    # that could be mistaken for one.
    text = "\n".join(
        [
            lookup_reply([PersonView("UABC", a, NOW) for a in Availability], now=NOW).text,
            help_reply().text,
            settings_reply(DEFAULT_PREFERENCES, connected=True).text,
        ]
    )
    assert not re.search(r"\+?\d[\d ()-]{6,}\d", text)


def _section_block(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def _button_element(label: str = "Go", action_id: str = "go") -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": label}}


BROKEN_MESSAGES = {
    "no fallback text": Message(" ", [_section_block()]),
    "51 blocks": Message("t", [_section_block() for _ in range(51)]),
    "unknown block": Message("t", [{"type": "table"}]),
    "long section": Message("t", [_section_block("x" * 3001)]),
    "empty section": Message("t", [_section_block("")]),
    "duplicate block_id": Message(
        "t", [_section_block(block_id="a"), _section_block(block_id="a")]
    ),
    "long button": Message("t", [_section_block(accessory=_button_element("x" * 76))]),
    "long action_id": Message("t", [_section_block(accessory=_button_element("x", "a" * 256))]),
    "26 actions": Message(
        "t",
        [{"type": "actions", "elements": [_button_element("b", f"a{n}") for n in range(26)]}],
    ),
    "same action_id twice": Message(
        "t", [{"type": "actions", "elements": [_button_element(), _button_element()]}]
    ),
}


@pytest.mark.parametrize("message", BROKEN_MESSAGES.values(), ids=BROKEN_MESSAGES.keys())
def test_the_validator_rejects_what_slack_would(message: Message) -> None:
    with pytest.raises(AssertionError):
        check_message(message)
