"""The /rcstatus parser: one Command for every text, examples of each, and polite refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.policy import StatusPolicy
from bot.slack.command_text import (
    DEFAULT_WATCH_DURATION,
    MAX_LOOKUP_TARGETS,
    AdminDefaults,
    Cancel,
    ChangeSettings,
    Command,
    Connect,
    EmailTarget,
    ExtensionTarget,
    Help,
    Link,
    Lookup,
    Me,
    Notify,
    Pause,
    Resume,
    SetFlag,
    SetPolicy,
    SetStatusEmoji,
    SetStatusText,
    SetSync,
    Unlink,
    UserMention,
    Watches,
    describe_target,
    parse_command,
)

ALICE = UserMention("U0ALICE")
BOB = UserMention("W0BOB")

EXAMPLES: list[tuple[str, Command]] = [
    # Me
    ("", Me()),
    ("   \n\t", Me()),
    ("me", Me()),
    # Lookup: both mention forms, Enterprise ids, email, extension, dedup, "and", punctuation
    ("<@U0ALICE>", Lookup((ALICE,))),
    ("<@U0ALICE|alice>", Lookup((ALICE,))),
    ("<@U0ALICE|Alice Smith> <@W0BOB>", Lookup((ALICE, BOB))),
    ("<@U0ALICE>,<@W0BOB>", Lookup((ALICE, BOB))),
    ("<@U0ALICE> and <@W0BOB>", Lookup((ALICE, BOB))),
    ("<@U0ALICE> <@U0ALICE|alice>", Lookup((ALICE,))),
    ("Alice@Example.com", Lookup((EmailTarget("alice@example.com"),))),
    ("<mailto:alice@example.com|alice@example.com>", Lookup((EmailTarget("alice@example.com"),))),
    ("alice@example.com?", Lookup((EmailTarget("alice@example.com"),))),
    ("101", Lookup((ExtensionTarget("101"),))),
    ("0101 <@U0ALICE>", Lookup((ExtensionTarget("0101"), ALICE))),
    (
        " ".join(f"<@U{n}>" for n in range(MAX_LOOKUP_TARGETS)),
        Lookup(tuple(UserMention(f"U{n}") for n in range(MAX_LOOKUP_TARGETS))),
    ),
    # Notify, with every duration form
    ("notify <@U0ALICE>", Notify(ALICE, DEFAULT_WATCH_DURATION)),
    ("NOTIFY <@U0ALICE>", Notify(ALICE, timedelta(hours=8))),
    ("watch <@U0ALICE>", Notify(ALICE, timedelta(hours=8))),
    ("notify <@U0ALICE> for 2h", Notify(ALICE, timedelta(hours=2))),
    ("notify <@U0ALICE> for 30m", Notify(ALICE, timedelta(minutes=30))),
    ("notify <@U0ALICE> for 90 minutes", Notify(ALICE, timedelta(minutes=90))),
    ("notify <@U0ALICE> for 1h30m", Notify(ALICE, timedelta(minutes=90))),
    ("notify <@U0ALICE> for 1 h 30 min", Notify(ALICE, timedelta(minutes=90))),
    ("notify <@U0ALICE> for 1 hour and 15 minutes", Notify(ALICE, timedelta(minutes=75))),
    ("notify <@U0ALICE> for 1.5 hours", Notify(ALICE, timedelta(minutes=90))),
    ("notify <@U0ALICE> for an hour", Notify(ALICE, timedelta(hours=1))),
    ("notify <@U0ALICE> for 1 day", Notify(ALICE, timedelta(hours=24))),
    ("notify <@U0ALICE> For 24H", Notify(ALICE, timedelta(hours=24))),
    ("notify <@U0ALICE> 45 mins", Notify(ALICE, timedelta(minutes=45))),
    ("notify 101 for 2h", Notify(ExtensionTarget("101"), timedelta(hours=2))),
    ("notify bob@example.com", Notify(EmailTarget("bob@example.com"), timedelta(hours=8))),
    # Cancel, watches
    ("cancel <@U0ALICE|alice>", Cancel(ALICE)),
    ("Cancel <@W0BOB>", Cancel(BOB)),
    ("watches", Watches()),
    ("Watches", Watches()),
    # Link, unlink
    ("link 101", Link("101", None)),
    ("link <@U0ALICE> 101", Link("101", "U0ALICE")),
    ("link 101 <@U0ALICE|alice>", Link("101", "U0ALICE")),
    ("LINK  2042", Link("2042", None)),
    ("unlink <@U0ALICE>", Unlink("U0ALICE")),
    ("unlink", Unlink(None)),
    # Pause, resume, connect, help
    ("pause", Pause()),
    ("Resume", Resume()),
    ("connect", Connect()),
    ("help", Help(None)),
    ("HELP", Help(None)),
    # Settings
    ("settings", ChangeSettings(())),
    ("settings policy replace", ChangeSettings((SetPolicy(StatusPolicy.REPLACE),))),
    ("Settings Policy RESPECT", ChangeSettings((SetPolicy(StatusPolicy.RESPECT),))),
    ("settings replace", ChangeSettings((SetPolicy(StatusPolicy.REPLACE),))),
    (
        "settings text Busy on the phone",
        ChangeSettings((SetStatusText("call", "Busy on the phone"),)),
    ),
    (
        "settings text   On the phone &amp; busy  ",
        ChangeSettings((SetStatusText("call", "On the phone & busy"),)),
    ),
    ("settings text 👩‍💻 coding", ChangeSettings((SetStatusText("call", "👩‍💻 coding"),))),
    ("settings text default", ChangeSettings((SetStatusText("call", None),))),
    ("settings meeting text Presenting", ChangeSettings((SetStatusText("meeting", "Presenting"),))),
    ("settings call text On the line", ChangeSettings((SetStatusText("call", "On the line"),))),
    ("settings emoji :phone:", ChangeSettings((SetStatusEmoji("call", ":phone:"),))),
    ("settings emoji Phone", ChangeSettings((SetStatusEmoji("call", ":phone:"),))),
    (
        "settings emoji :+1::skin-tone-3:",
        ChangeSettings((SetStatusEmoji("call", ":+1::skin-tone-3:"),)),
    ),
    ("settings meeting emoji reset", ChangeSettings((SetStatusEmoji("meeting", None),))),
    ("settings sync off", ChangeSettings((SetSync(enabled=False),))),
    ("settings sync ON", ChangeSettings((SetSync(enabled=True),))),
]


@pytest.mark.parametrize(("text", "expected"), EXAMPLES, ids=[text for text, _ in EXAMPLES])
def test_examples(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


REFUSALS: list[tuple[str, str]] = [
    # (input, words the reason must contain)
    ("frobnicate", "“frobnicate”"),
    ("status <@U0ALICE>", "“status”"),
    ("@alice", "pick the person"),
    ("<@U0ALICE> @bob", "pick the person"),
    ("<!here>", "@here is a group"),
    ("<!channel|channel>", "@channel is a group"),
    ("<!subteam^S0TEAM|@sales>", "user group"),
    ("<#C0GENERAL|general>", "channel, not a person"),
    ("<#C0PRIVATE|>", "channel, not a person"),
    ("<https://example.com>", "link, not a person"),
    (" ".join(f"<@U{n}>" for n in range(MAX_LOOKUP_TARGETS + 1)), "at most 10 people"),
    ("notify", "Who should I watch"),
    ("notify <@U0ALICE> <@W0BOB>", "one person at a time"),
    ("notify <@U0ALICE> for soon", "“for soon”"),
    ("notify <@U0ALICE> until 5pm", "length of time"),
    ("notify <@U0ALICE> for 2 days", "at most 24 h"),
    ("notify <@U0ALICE> for 25h", "at most 24 h"),
    ("notify <@U0ALICE> for 9" + "9" * 400 + "h", "at most 24 h"),
    ("notify <@U0ALICE> for 0m", "at least a minute"),
    ("notify <@U0ALICE> for", "How long"),
    ("notify @alice", "pick the person"),
    ("cancel", "Who do you mean"),
    ("cancel <@U0ALICE> <@W0BOB>", "One person at a time"),
    ("link", "extension number"),
    ("link <@U0ALICE>", "extension number"),
    ("link @alice 101", "pick the person"),
    ("link 101 102", "“102”"),
    ("unlink <#C0GENERAL|general>", "channel"),
    ("unlink <@U0ALICE> <@W0BOB>", "unlink"),
    ("pause for 2h", "takes nothing after it"),
    ("watches <@U0ALICE>", "takes nothing after it"),
    ("settings colour blue", "“colour”"),
    ("settings policy ignore", "`respect` or `replace`"),
    ("settings sync maybe", "settings sync on"),
    ("settings text", "What should your status say"),
    ("settings text " + "x" * 101, "at most 100 characters"),
    ("settings text call <@U0ALICE>", "mentions, channels or links"),
    ("settings emoji 📞", "emoji code"),
    ("settings emoji :a: :b:", "one emoji code"),
    ("settings meeting colour", "settings meeting text"),
    ("x" * 5000, "longer than any command"),
]


@pytest.mark.parametrize(("text", "words"), REFUSALS, ids=[text[:40] for text, _ in REFUSALS])
def test_refusals_explain_what_was_not_understood(text: str, words: str) -> None:
    command = parse_command(text)
    assert isinstance(command, Help)
    assert command.reason is not None
    assert words.casefold() in command.reason.casefold()


def test_a_long_unknown_word_is_quoted_short() -> None:
    command = parse_command("z" * 500)
    assert isinstance(command, Help)
    assert command.reason is not None
    assert "z" * 31 not in command.reason
    assert "…" in command.reason


def test_status_text_keeps_emoji_sequences_and_drops_control_characters() -> None:
    command = parse_command("settings text On\x00 the\x1b phone 🏳️‍🌈")
    assert command == ChangeSettings((SetStatusText("call", "On the phone 🏳️‍🌈"),))


def test_targets_are_described_without_markup_beyond_a_mention() -> None:
    assert describe_target(ALICE) == "<@U0ALICE>"
    assert describe_target(EmailTarget("a@example.com")) == "a@example.com"
    assert describe_target(ExtensionTarget("101")) == "extension 101"


SLACKISH = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "notify",
                "cancel",
                "watches",
                "link",
                "unlink",
                "pause",
                "resume",
                "settings",
                "policy",
                "text",
                "emoji",
                "sync",
                "for",
                "and",
                "2h",
                "1h30m",
                "<@U0ALICE>",
                "<@W0BOB|bob>",
                "<!here>",
                "<#C1|general>",
                "@carol",
                "101",
                "a@example.com",
                ":phone:",
                "&amp;",
                "<",
                ">",
                "|",
            ]
        ),
        st.text(max_size=30),
    ),
    max_size=14,
).map(" ".join)


def _assert_well_formed(text: str, command: Command) -> None:
    assert isinstance(
        command,
        (
            Lookup,
            Me,
            Notify,
            Cancel,
            Watches,
            Link,
            Unlink,
            Pause,
            Resume,
            ChangeSettings,
            Connect,
            Help,
        ),
    )
    if isinstance(command, Help) and command.reason is not None:
        reason = command.reason
        assert len(reason) < 200
        # No run of more than 100 characters of the input comes back.
        for start in range(max(len(reason) - 100, 0)):
            assert reason[start : start + 101] not in text
    if isinstance(command, Lookup):
        assert 1 <= len(command.targets) <= MAX_LOOKUP_TARGETS
    if isinstance(command, Notify):
        assert timedelta(minutes=1) <= command.duration <= timedelta(hours=24)


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_any_text_gives_a_command(text: str) -> None:
    _assert_well_formed(text, parse_command(text))


@settings(max_examples=400, deadline=None)
@given(SLACKISH)
def test_any_mix_of_command_words_gives_a_command(text: str) -> None:
    _assert_well_formed(text, parse_command(text))


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=8).map(lambda chunk: chunk * 600))
def test_huge_text_gives_a_command(text: str) -> None:
    _assert_well_formed(text, parse_command(text))
    _assert_well_formed(text, parse_command("settings text " + text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("settings snooze on", ChangeSettings((SetFlag("snooze", True),))),
        ("settings snooze off", ChangeSettings((SetFlag("snooze", False),))),
        ("settings huddle busy", ChangeSettings((SetFlag("huddle_busy", True),))),
        ("settings huddle off", ChangeSettings((SetFlag("huddle_busy", False),))),
        ("settings meetings off", ChangeSettings((SetFlag("sync_meetings", False),))),
        ("settings calltypes default", ChangeSettings((SetFlag("call_types", None),))),
        (
            "settings meetings text Presenting",
            ChangeSettings((SetStatusText("meeting", "Presenting"),)),
        ),
        (
            "settings external text With a customer",
            ChangeSettings((SetStatusText("external", "With a customer"),)),
        ),
        ("admin defaults", AdminDefaults()),
        ("admin defaults snooze on", AdminDefaults((SetFlag("snooze", True),))),
        ("admin defaults emoji :phone:", AdminDefaults((SetStatusEmoji("call", ":phone:"),))),
    ],
)
def test_controls_and_admin_defaults_parse(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("settings huddle maybe", "settings huddle busy"),
        ("admin defaults policy replace", "each person's own"),
        ("admin defaults share off", "each person's own"),
        ("admin", "admin defaults"),
        ("settings inbound emoji :x:", "settings inbound text"),
    ],
)
def test_controls_refusals_say_what_would_work(text: str, words: str) -> None:
    parsed = parse_command(text)
    assert isinstance(parsed, Help)
    assert parsed.reason is not None
    assert words in parsed.reason
