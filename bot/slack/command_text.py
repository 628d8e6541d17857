"""Pure parser of `/rcstatus` text: any string in, exactly one Command out, never an exception."""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Final, Literal

from bot.policy import STATUS_TEXT_LIMIT, StatusPolicy

MAX_LOOKUP_TARGETS: Final = 10
"""A lookup answers about at most this many people."""
DEFAULT_WATCH_DURATION: Final = timedelta(hours=8)
MAX_WATCH_DURATION: Final = timedelta(hours=24)
MIN_WATCH_DURATION: Final = timedelta(minutes=1)
MAX_ACTIVE_WATCHES: Final = 20
"""Active watches one person may hold; enforced by the handler, stated in replies."""
MAX_STARRED: Final = 50
"""Colleagues one person may follow on their App Home board."""
MAX_TEXT_LENGTH: Final = 4000
"""Longer than any command we understand; refused before any parsing work."""

_ECHO_LIMIT: Final = 30
"""Characters of the person's input a help reason may quote."""


@dataclass(frozen=True, slots=True)
class UserMention:
    """A Slack user picked from the autocomplete (`<@U…>` or `<@U…|name>`)."""

    user_id: str


@dataclass(frozen=True, slots=True)
class EmailTarget:
    """A person named by email address, lowercased."""

    email: str


@dataclass(frozen=True, slots=True)
class ExtensionTarget:
    """A person named by RingCentral extension number (digits, as typed)."""

    number: str


Target = UserMention | EmailTarget | ExtensionTarget


@dataclass(frozen=True, slots=True)
class SetPolicy:
    """`settings policy respect|replace`."""

    policy: StatusPolicy


TextKind = Literal["call", "meeting", "external", "internal", "inbound", "outbound"]
"""Whose words: calls, meetings, or calls of one type (used with wording by call type)."""
CALL_TYPE_KINDS: Final = ("external", "internal", "inbound", "outbound")

Flag = Literal["sync_meetings", "snooze", "huddle_busy", "call_types"]


@dataclass(frozen=True, slots=True)
class SetStatusText:
    """`settings [call|meeting|external|internal|inbound|outbound] text …`; None puts the
    workspace default back."""

    kind: TextKind
    text: str | None


@dataclass(frozen=True, slots=True)
class SetStatusEmoji:
    """`settings [call|meeting] emoji :name:`; None puts the workspace default back."""

    kind: Literal["call", "meeting"]
    emoji: str | None


@dataclass(frozen=True, slots=True)
class SetFlag:
    """`settings meetings|snooze|huddle|calltypes on|off|default`: None defers to the workspace."""

    flag: Flag
    enabled: bool | None


@dataclass(frozen=True, slots=True)
class SetSync:
    """`settings sync on|off`: off stops status sync until turned on again (resume also does)."""

    enabled: bool


@dataclass(frozen=True, slots=True)
class SetShare:
    """`settings share on|off`: whether other systems (the availability API) may see me."""

    enabled: bool


SettingChange = SetPolicy | SetStatusText | SetStatusEmoji | SetSync | SetShare | SetFlag
DefaultChange = SetStatusText | SetStatusEmoji | SetFlag
"""What a workspace default can be: wording and switches, not one person's sync or sharing."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """`/rcstatus @alice @bob`: each person's availability."""

    targets: tuple[Target, ...]


@dataclass(frozen=True, slots=True)
class Me:
    """`/rcstatus` alone: your own availability and sync state."""


@dataclass(frozen=True, slots=True)
class Notify:
    """`notify @alice [for 2h]`: DM me once when they are free."""

    target: Target
    duration: timedelta = DEFAULT_WATCH_DURATION


@dataclass(frozen=True, slots=True)
class Cancel:
    """`cancel @alice`: stop watching them."""

    target: Target


@dataclass(frozen=True, slots=True)
class Watches:
    """`watches`: the people I asked to be told about."""


@dataclass(frozen=True, slots=True)
class Link:
    """`link 101` links the invoker; `link @bob 101` links someone else (admins only)."""

    extension_number: str
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Unlink:
    """`unlink @bob` (admins only); `unlink` alone unlinks the invoker."""

    user: str | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """`pause`: stop changing my status for now."""


@dataclass(frozen=True, slots=True)
class Resume:
    """`resume`: change my status again (also turns sync back on when it was off)."""


@dataclass(frozen=True, slots=True)
class ChangeSettings:
    """`settings` shows them; with words after it, the changes to make."""

    changes: tuple[SettingChange, ...] = ()


@dataclass(frozen=True, slots=True)
class AdminDefaults:
    """`admin defaults` shows the workspace's defaults; with words after it, changes them."""

    changes: tuple[DefaultChange, ...] = ()


@dataclass(frozen=True, slots=True)
class Connect:
    """`connect`: the link that lets the bot write my status."""


@dataclass(frozen=True, slots=True)
class Help:
    """The help text; `reason` politely says what was not understood (None when asked for)."""

    reason: str | None = None


Command = (
    Lookup
    | Me
    | Notify
    | Cancel
    | Watches
    | Link
    | Unlink
    | Pause
    | Resume
    | ChangeSettings
    | AdminDefaults
    | Connect
    | Help
)

# With escaping on, Slack wraps mentions, channels, groups and links in angle brackets, and
# escapes a literal "<", ">" and "&" as entities, so a bracketed token never contains "<" or ">".
_TOKEN: Final = re.compile(r"<[^<>]*>|[^\s,<]+|<")
_MENTION: Final = re.compile(r"<@([UW][A-Z0-9]{1,40})(?:\|[^>]*)?>")
_MAILTO: Final = re.compile(r"<mailto:([^|>]+)(?:\|[^>]*)?>", re.IGNORECASE)
_EMAIL: Final = re.compile(r"[^@\s<>|]+@[^@\s<>|]+\.[^@\s<>|.]+")
_EXTENSION: Final = re.compile(r"[0-9]{1,15}")
_EMOJI: Final = re.compile(r":?([a-z0-9_+'\-]{1,100})(::skin-tone-[2-6])?:?")
_MARKUP: Final = re.compile(r"<[^<>]*>")

_DURATION_PART: Final = re.compile(
    r"([0-9]+(?:\.[0-9]+)?|an?|one)\s*"
    r"(d|days?|h|hrs?|hours?|m|mins?|minutes?)(?![a-z])",
)
_UNIT_SECONDS: Final = MappingProxyType({"d": 86_400, "h": 3_600, "m": 60})

_AND_WORDS: Final = frozenset({"and", "&amp;", "&"})
_ON_WORDS: Final = frozenset({"on", "yes", "enable", "enabled", "true"})
_OFF_WORDS: Final = frozenset({"off", "no", "disable", "disabled", "false"})
_DEFAULT_WORDS: Final = frozenset({"default", "reset"})
_GROUPS: Final = MappingProxyType({"here": "@here", "channel": "@channel", "everyone": "@everyone"})

_HELP_EXAMPLES: Final = MappingProxyType(
    {
        "notify": "try `notify @alice` or `notify @alice for 2h`",
        "cancel": "try `cancel @alice`",
        "link": "try `link 101` for yourself, or `link @alice 101`",
        "unlink": "try `unlink` for yourself, or `unlink @alice`",
        "settings": (
            "try `settings policy replace`, `settings text Busy on the phone` "
            "or `settings emoji :phone:`"
        ),
    }
)


class _Refusal(Exception):
    """Internal: parsing stopped with a reason for the person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_command(text: str) -> Command:
    """The Command for `text` (the slash command's `text` field); unknown input yields Help."""
    if len(text) > MAX_TEXT_LENGTH:
        return Help("That's longer than any command I know.")
    try:
        return _parse(text)
    except _Refusal as refusal:
        return Help(refusal.reason)


def describe_target(target: Target) -> str:
    """How a reply names a target: a mention, the address, or `extension 101`."""
    match target:
        case UserMention(user_id):
            return f"<@{user_id}>"
        case EmailTarget(email):
            return email
        case ExtensionTarget(number):
            return f"extension {number}"


def _parse(text: str) -> Command:
    found = list(_TOKEN.finditer(text))
    if not found:
        return Me()
    tokens = [match.group() for match in found]
    keyword = tokens[0].casefold()
    rest = tokens[1:]
    if keyword in ("help", "?", "-h", "--help"):
        return Help()
    if keyword == "me":
        _expect_nothing(rest, keyword)
        return Me()
    if keyword in ("notify", "watch"):
        return _parse_notify(rest)
    if keyword in ("cancel", "unwatch"):
        return Cancel(_one_target(rest, "cancel"))
    if keyword in ("watches", "watching"):
        _expect_nothing(rest, keyword)
        return Watches()
    if keyword == "link":
        return _parse_link(rest)
    if keyword == "unlink":
        return _parse_unlink(rest)
    if keyword == "pause":
        _expect_nothing(rest, keyword)
        return Pause()
    if keyword == "resume":
        _expect_nothing(rest, keyword)
        return Resume()
    if keyword in ("settings", "setting", "prefs", "preferences"):
        return _parse_settings(text, found[1:])
    if keyword == "admin":
        return _parse_admin(text, found[1:])
    if keyword in ("connect", "install"):
        _expect_nothing(rest, keyword)
        return Connect()
    return _parse_lookup(tokens)


def _parse_lookup(tokens: Sequence[str]) -> Command:
    targets: list[Target] = []
    for index, token in enumerate(tokens):
        if index > 0 and token.casefold() in _AND_WORDS:
            continue
        target = _target(token, first_word=index == 0)
        if target not in targets:
            targets.append(target)
        if len(targets) > MAX_LOOKUP_TARGETS:
            raise _Refusal(f"Please ask about at most {MAX_LOOKUP_TARGETS} people at once.")
    return Lookup(tuple(targets))


def _parse_notify(rest: Sequence[str]) -> Command:
    if not rest:
        raise _Refusal(f"Who should I watch? {_cap(_HELP_EXAMPLES['notify'])}.")
    target = _target(rest[0])
    after = rest[1:]
    if after and _looks_like_target(after[0]):
        raise _Refusal("I can watch one person at a time: send one `notify` per person.")
    if not after:
        return Notify(target)
    return Notify(target, _parse_duration(" ".join(after)))


def _parse_duration(words: str) -> timedelta:
    spoken = words.casefold()
    if spoken == "for" or spoken.startswith("for "):
        spoken = spoken[3:]
    position = 0
    seconds = 0.0
    matched = False
    while position < len(spoken):
        if spoken[position].isspace() or spoken[position] == ",":
            position += 1
            continue
        if matched and spoken.startswith("and ", position):
            position += 4
            continue
        part = _DURATION_PART.match(spoken, position)
        if part is None:
            raise _Refusal(
                f"I couldn't read {_quote(words)} as a length of time; "
                "try `for 2h`, `for 30m` or `for 1h30m`."
            )
        amount, unit = part.groups()
        number = 1.0 if amount in ("a", "an", "one") else float(amount)
        seconds += number * _UNIT_SECONDS[unit[0]]
        matched = True
        position = part.end()
    if not matched:
        raise _Refusal("How long should I watch? Try `for 2h` or `for 30m`.")
    if not math.isfinite(seconds) or seconds > MAX_WATCH_DURATION.total_seconds():
        raise _Refusal("I can watch for at most 24 h; try `for 24h` or less.")
    duration = timedelta(seconds=round(seconds))
    if duration < MIN_WATCH_DURATION:
        raise _Refusal("Please watch for at least a minute, like `for 30m`.")
    return duration


def _parse_link(rest: Sequence[str]) -> Command:
    user: str | None = None
    number: str | None = None
    for token in rest:
        if number is None and _EXTENSION.fullmatch(token):
            number = token
            continue
        mention = _MENTION.fullmatch(token)
        if user is None and mention is not None:
            user = mention.group(1)
            continue
        if mention is None:
            _refuse_non_person(token)
        raise _Refusal(f"I didn't understand {_quote(token)}; {_HELP_EXAMPLES['link']}.")
    if number is None:
        raise _Refusal(f"Link needs an extension number; {_HELP_EXAMPLES['link']}.")
    return Link(number, user)


def _parse_unlink(rest: Sequence[str]) -> Command:
    if not rest:
        return Unlink()
    if len(rest) == 1:
        mention = _MENTION.fullmatch(rest[0])
        if mention is not None:
            return Unlink(mention.group(1))
        _refuse_non_person(rest[0])
    raise _Refusal(f"I didn't understand that; {_HELP_EXAMPLES['unlink']}.")


_FLAG_WORDS: Final[MappingProxyType[str, tuple[Flag, str, str]]] = MappingProxyType(
    {
        "meetings": ("sync_meetings", "on", "off"),
        "snooze": ("snooze", "on", "off"),
        "huddle": ("huddle_busy", "busy", "off"),
        "huddles": ("huddle_busy", "busy", "off"),
        "calltypes": ("call_types", "on", "off"),
    }
)


def _parse_admin(text: str, found: Sequence[re.Match[str]]) -> Command:
    words = [match.group().casefold() for match in found]
    if not words or words[0] != "defaults":
        raise _Refusal("Admins can say `admin defaults` to see or change the workspace defaults.")
    if len(found) == 1:
        return AdminDefaults()
    parsed = _parse_settings(text, found[1:], prefix="admin defaults")
    if not isinstance(parsed, ChangeSettings):
        return parsed
    changes: list[DefaultChange] = []
    for change in parsed.changes:
        if not isinstance(change, SetStatusText | SetStatusEmoji | SetFlag):
            raise _Refusal(
                "Workspace defaults are wording, emoji, meetings, snooze, huddle and calltypes; "
                "sync, sharing and the policy are each person's own."
            )
        changes.append(change)
    return AdminDefaults(tuple(changes))


def _parse_flag(word: str, choice: str, prefix: str) -> SetFlag:
    flag, on_word, off_word = _FLAG_WORDS[word]
    if choice in _ON_WORDS or choice == on_word:
        return SetFlag(flag, True)
    if choice in _OFF_WORDS:
        return SetFlag(flag, False)
    if choice in _DEFAULT_WORDS:
        return SetFlag(flag, None)
    name = "huddle" if flag == "huddle_busy" else word
    raise _Refusal(f"Say `{prefix} {name} {on_word}` or `{prefix} {name} {off_word}`.")


def _parse_settings(
    text: str, found: Sequence[re.Match[str]], *, prefix: str = "settings"
) -> Command:
    if not found:
        return ChangeSettings()
    words = [match.group() for match in found]
    word = words[0].casefold()
    if word in _FLAG_WORDS and not (len(words) > 1 and words[1].casefold() in ("text", "emoji")):
        return ChangeSettings((_parse_flag(word, " ".join(words[1:]).casefold(), prefix),))
    kind: TextKind = "call"
    if word in ("call", "calls", "meeting", "meetings", *CALL_TYPE_KINDS):
        kind = _text_kind(word)
        found, words = found[1:], words[1:]
        word = words[0].casefold() if words else ""
        if word not in ("text", "emoji") or (word == "emoji" and kind in CALL_TYPE_KINDS):
            if kind in CALL_TYPE_KINDS:
                raise _Refusal(f"Say `{prefix} {kind} text …` (or `… text default`).")
            raise _Refusal(f"Say `{prefix} {kind} text …` or `{prefix} {kind} emoji :name:`.")
    if word in ("respect", "replace"):
        _expect_nothing(words[1:], f"settings {word}")
        return ChangeSettings((SetPolicy(StatusPolicy(word)),))
    if word == "policy":
        choice = " ".join(words[1:]).casefold()
        if choice not in ("respect", "replace"):
            raise _Refusal("The policy is `respect` or `replace`, as in `settings policy replace`.")
        return ChangeSettings((SetPolicy(StatusPolicy(choice)),))
    if word == "sync":
        choice = " ".join(words[1:]).casefold()
        if choice in _ON_WORDS:
            return ChangeSettings((SetSync(enabled=True),))
        if choice in _OFF_WORDS:
            return ChangeSettings((SetSync(enabled=False),))
        raise _Refusal("Say `settings sync on` or `settings sync off`.")
    if word == "share":
        choice = " ".join(words[1:]).casefold()
        if choice in _ON_WORDS:
            return ChangeSettings((SetShare(enabled=True),))
        if choice in _OFF_WORDS:
            return ChangeSettings((SetShare(enabled=False),))
        raise _Refusal("Say `settings share on` or `settings share off`.")
    if word == "text":
        # Everything after the keyword, as typed: a status is words, not tokens.
        return ChangeSettings((SetStatusText(kind, _status_text(text[found[0].end() :])),))
    if word == "emoji":
        emoji_kind: Literal["call", "meeting"] = "meeting" if kind == "meeting" else "call"
        return ChangeSettings((SetStatusEmoji(emoji_kind, _status_emoji(words[1:])),))
    raise _Refusal(f"I don't know the setting {_quote(words[0])}; {_HELP_EXAMPLES['settings']}.")


def _text_kind(word: str) -> TextKind:
    if word.startswith("meeting"):
        return "meeting"
    if word in CALL_TYPE_KINDS:
        return word  # type: ignore[return-value]
    return "call"


def _status_text(raw: str) -> str | None:
    if _MARKUP.search(raw):
        raise _Refusal("A status can't contain mentions, channels or links; use plain words.")
    # Format characters (Cf) stay: zero-width joiners hold emoji sequences together.
    words = " ".join(_printable(html.unescape(raw), dropped=("Cc", "Cs")).split())
    if not words:
        raise _Refusal("What should your status say? Try `settings text Busy on the phone`.")
    if words.casefold() in _DEFAULT_WORDS:
        return None
    if len(words) > STATUS_TEXT_LIMIT:
        raise _Refusal(
            f"A status can be at most {STATUS_TEXT_LIMIT} characters; yours has {len(words)}."
        )
    return words


def _status_emoji(words: Sequence[str]) -> str | None:
    if len(words) != 1:
        raise _Refusal("Give one emoji code, like `settings emoji :telephone_receiver:`.")
    word = words[0].casefold()
    if word in _DEFAULT_WORDS:
        return None
    emoji = _EMOJI.fullmatch(word)
    if emoji is None:
        raise _Refusal("Use an emoji code with colons, like `:telephone_receiver:`.")
    name, skin_tone = emoji.groups()
    return f":{name}:" + (f"{skin_tone[1:]}:" if skin_tone else "")


def _one_target(rest: Sequence[str], keyword: str) -> Target:
    if not rest:
        raise _Refusal(f"Who do you mean? {_cap(_HELP_EXAMPLES[keyword])}.")
    if len(rest) > 1:
        raise _Refusal(f"One person at a time, please; {_HELP_EXAMPLES[keyword]}.")
    return _target(rest[0])


def _target(token: str, *, first_word: bool = False) -> Target:
    if not token.startswith("<"):
        # "Is alice@example.com free?" ends in punctuation that belongs to the sentence.
        token = token.rstrip(".?!;") or token
    mention = _MENTION.fullmatch(token)
    if mention is not None:
        return UserMention(mention.group(1))
    mailto = _MAILTO.fullmatch(token)
    if mailto is not None and _EMAIL.fullmatch(mailto.group(1)):
        return EmailTarget(mailto.group(1).casefold())
    if _EMAIL.fullmatch(token):
        return EmailTarget(token.casefold())
    if _EXTENSION.fullmatch(token):
        return ExtensionTarget(token)
    _refuse_non_person(token)
    if first_word:
        raise _Refusal(f"I don't know the command {_quote(token)}.")
    raise _Refusal(f"I didn't understand {_quote(token)}: name people with @-mentions.")


def _refuse_non_person(token: str) -> None:
    """Raise with a specific reason when `token` names something that is not a person."""
    if token.startswith("<!"):
        name = token[2:-1].split("|", 1)[0].split("^", 1)[0].casefold()
        group = _GROUPS.get(name, "a user group" if name == "subteam" else None)
        if group is None:
            raise _Refusal("That's not a person; mention people with @.")
        raise _Refusal(f"{_cap(group)} is a group, not a person; mention people one by one.")
    if token.startswith("<#"):
        raise _Refusal("That's a channel, not a person; mention people one by one.")
    if token.startswith("@") and len(token) > 1:
        raise _Refusal(
            f"{_quote(token)} reached me as plain text. Pick the person from the list "
            "Slack shows while you type, so I know exactly who you mean."
        )
    if token.startswith("<") and token.endswith(">"):
        raise _Refusal("That's a link, not a person; mention people with @.")


def _looks_like_target(token: str) -> bool:
    return bool(
        _MENTION.fullmatch(token)
        or _EMAIL.fullmatch(token)
        or _MAILTO.fullmatch(token)
        or token.startswith(("<!", "<#", "@"))
    )


def _expect_nothing(rest: Sequence[str], keyword: str) -> None:
    if rest:
        raise _Refusal(
            f"`{keyword}` takes nothing after it; I didn't understand {_quote(rest[0])}."
        )


def _quote(fragment: str) -> str:
    """`fragment` as a help reason may show it: printable, short, in quotes."""
    shown = " ".join(_printable(fragment).split())
    if len(shown) > _ECHO_LIMIT:
        shown = shown[: _ECHO_LIMIT - 1].rstrip() + "…"
    return f"“{shown}”"


def _printable(fragment: str, *, dropped: tuple[str, ...] = ("C",)) -> str:
    """`fragment` with characters of the `dropped` Unicode categories turned into spaces."""
    return "".join(
        " " if unicodedata.category(char).startswith(dropped) else char for char in fragment
    )


def _cap(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


__all__ = [
    "DEFAULT_WATCH_DURATION",
    "MAX_ACTIVE_WATCHES",
    "MAX_LOOKUP_TARGETS",
    "MAX_TEXT_LENGTH",
    "MAX_WATCH_DURATION",
    "MIN_WATCH_DURATION",
    "AdminDefaults",
    "Cancel",
    "ChangeSettings",
    "Command",
    "Connect",
    "EmailTarget",
    "ExtensionTarget",
    "Help",
    "Link",
    "Lookup",
    "Me",
    "Notify",
    "Pause",
    "Resume",
    "SetFlag",
    "SetPolicy",
    "SetShare",
    "SetStatusEmoji",
    "SetStatusText",
    "SetSync",
    "SettingChange",
    "Target",
    "Unlink",
    "UserMention",
    "Watches",
    "describe_target",
    "parse_command",
]
