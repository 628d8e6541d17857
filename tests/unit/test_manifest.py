"""manifest.yml against the rules of Slack's manifest schema (reference/slack.md §6)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.slack.app import BOT_SCOPES, USER_SCOPES

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"
MISSING = object()


@dataclass(frozen=True)
class Rule:
    """`path` names fields (`a.b`, `a[*].b` for every item); `check` holds for each value found."""

    path: str
    check: Callable[[Any], bool]
    says: str
    required: bool = True


def text(low: int, high: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and low <= len(value) <= high


def url(high: int) -> Callable[[Any], bool]:
    return lambda value: (
        isinstance(value, str) and len(value) <= high and bool(re.match(r"https?://[^\s]+$", value))
    )


def is_true(value: Any) -> bool:
    return value is True


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def contains(*wanted: str) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, list) and set(wanted) <= set(value)


def equals_as_set(expected: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda value: (
        isinstance(value, list) and len(value) == len(set(value)) and set(value) == set(expected)
    )


def list_of(low: int, high: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, list) and low <= len(value) <= high


RULES = [
    Rule("_metadata.major_version", lambda v: v == 1, "manifest schema version 1"),
    Rule("display_information.name", text(1, 35), "name is 1–35 characters"),
    Rule("display_information.description", text(1, 140), "description is at most 140"),
    Rule(
        "display_information.long_description",
        text(175, 4000),
        "long_description is 175–4000 characters",
        required=False,
    ),
    Rule(
        "display_information.background_color",
        lambda v: isinstance(v, str) and bool(re.fullmatch(r"#(?:[0-9a-fA-F]{3}){1,2}", v)),
        "background_color is #rgb or #rrggbb",
        required=False,
    ),
    Rule("features.app_home.home_tab_enabled", is_true, "the Home tab is on"),
    Rule("features.app_home.messages_tab_enabled", is_true, "the Messages tab is on for DMs"),
    Rule("features.bot_user.display_name", text(1, 80), "bot display_name is at most 80"),
    Rule("features.bot_user.always_online", is_bool, "always_online is a bool", required=False),
    Rule("features.slash_commands", list_of(1, 50), "1–50 slash commands"),
    Rule(
        "features.slash_commands[*].command",
        lambda v: isinstance(v, str) and 2 <= len(v) <= 32 and v.startswith("/"),
        "a command is 2–32 characters and starts with /",
    ),
    Rule("features.slash_commands[*].description", text(1, 2000), "description at most 2000"),
    Rule("features.slash_commands[*].usage_hint", text(0, 1000), "usage_hint at most 1000", False),
    Rule("features.slash_commands[*].url", url(3000), "command url is http(s)", required=False),
    Rule("features.slash_commands[*].should_escape", is_true, "mentions arrive as <@U…>"),
    Rule("oauth_config.redirect_urls", list_of(1, 1000), "1–1000 redirect URLs"),
    Rule("oauth_config.redirect_urls[*]", url(2500), "each redirect URL is http(s), ≤ 2500"),
    Rule("oauth_config.scopes.bot", equals_as_set(BOT_SCOPES), "bot scopes are BOT_SCOPES"),
    Rule("oauth_config.scopes.user", equals_as_set(USER_SCOPES), "user scopes are USER_SCOPES"),
    Rule(
        "settings.event_subscriptions.bot_events",
        lambda v: (
            list_of(1, 100)(v)
            and contains(
                "app_home_opened", "user_status_changed", "tokens_revoked", "app_uninstalled"
            )(v)
        ),
        "the four events the bot listens to are subscribed",
    ),
    Rule("settings.interactivity.is_enabled", is_true, "buttons need interactivity"),
    Rule("settings.socket_mode_enabled", is_true, "Socket Mode is on"),
]


def values_at(document: Any, path: str) -> Iterator[Any]:
    """Every value at `path`; MISSING where a key is absent."""
    head, _, rest = path.partition(".")
    every = head.endswith("[*]")
    key = head.removesuffix("[*]")
    if not isinstance(document, dict) or key not in document:
        yield MISSING
        return
    found = document[key]
    items = found if every and isinstance(found, list) else [found]
    if every and not isinstance(found, list):
        yield MISSING
        return
    for item in items:
        if rest:
            yield from values_at(item, rest)
        else:
            yield item


def violations(document: Any, rules: list[Rule]) -> list[str]:
    problems: list[str] = []
    for rule in rules:
        for value in values_at(document, rule.path):
            if value is MISSING:
                if rule.required:
                    problems.append(f"{rule.path} is missing ({rule.says})")
            elif not rule.check(value):
                problems.append(f"{rule.path} = {value!r}: {rule.says}")
    return problems


@pytest.fixture(scope="module")
def manifest() -> Any:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def test_manifest_follows_every_rule(manifest: Any) -> None:
    assert violations(manifest, RULES) == []


def test_the_command_is_rcstatus_and_redirects_use_the_placeholder_host(manifest: Any) -> None:
    commands = [command["command"] for command in manifest["features"]["slash_commands"]]
    assert commands == ["/rcstatus"]
    assert manifest["oauth_config"]["redirect_urls"] == [
        "https://rcstatus.example.com/slack/oauth_redirect"
    ]


def test_socket_mode_manifest_has_no_request_urls(manifest: Any) -> None:
    # In Socket Mode Slack delivers over the socket; a request URL would be ignored at best.
    assert "request_url" not in manifest["settings"]["event_subscriptions"]
    assert "request_url" not in manifest["settings"]["interactivity"]
    assert all("url" not in command for command in manifest["features"]["slash_commands"])


BROKEN = [
    ("display_information.name", "x" * 36),
    ("display_information.description", "x" * 141),
    ("display_information.long_description", "too short"),
    ("display_information.background_color", "blue"),
    ("features.bot_user.display_name", "x" * 81),
    ("features.slash_commands[*].command", "rcstatus"),
    ("features.slash_commands[*].should_escape", False),
    ("oauth_config.redirect_urls[*]", "ftp://example.com/x"),
    ("oauth_config.scopes.bot", ["commands"]),
    ("settings.event_subscriptions.bot_events", ["app_home_opened"]),
    ("settings.socket_mode_enabled", False),
]


def _set(document: Any, path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    key = head.removesuffix("[*]")
    targets = document[key] if head.endswith("[*]") else [document[key]]
    if not rest:
        if head.endswith("[*]"):
            document[key] = [value for _ in targets]
        else:
            document[key] = value
        return
    for target in targets:
        _set(target, rest, value)


@pytest.mark.parametrize(("path", "value"), BROKEN, ids=[path for path, _ in BROKEN])
def test_the_rules_catch_a_broken_field(manifest: Any, path: str, value: Any) -> None:
    broken = yaml.safe_load(yaml.safe_dump(manifest))
    _set(broken, path, value)
    assert any(problem.startswith(path) for problem in violations(broken, RULES))


def test_the_rules_catch_a_missing_required_field(manifest: Any) -> None:
    broken = yaml.safe_load(yaml.safe_dump(manifest))
    del broken["settings"]["interactivity"]
    assert violations(broken, RULES) == [
        "settings.interactivity.is_enabled is missing (buttons need interactivity)"
    ]
