"""Schemathesis hooks for the API fuzz run: held requests cut short, webhook URLs kept on this
machine, each answer noted."""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Final
from urllib.parse import urlsplit

import schemathesis

from bot.webhooks.safety import URL_LIMIT, UnsafeUrl, check_url

ANSWERS_ENV: Final = "RCSTATUS_FUZZ_ANSWERS"
"""A file to which each answer is appended as `METHOD PATH STATUS`, for the test to read."""
PINGS_ENV: Final = "RCSTATUS_FUZZ_PINGS"
"""A file to which each ping's answer is appended as one line of JSON."""
RECEIVER_ENV: Final = "RCSTATUS_FUZZ_RECEIVER"
"""`host:port` of the test's own receiver: every webhook URL the fuzzer invents goes there."""
PEOPLE_ENV: Final = "RCSTATUS_FUZZ_PEOPLE"
"""A JSON list of references to real people, for the people filters of valid cases."""
_writing = threading.Lock()

HOLD_SECONDS: Final = 0.2
"""How long the fuzzer lets any request that can be held (the gate's `timeout`) wait."""


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def local_url(value: str, receiver: str) -> str:
    """`value` with its host and port replaced by `receiver` when it is a URL the bot could try
    to reach (its form passes the bot's check, so it would be resolved and connected to); any
    other string is returned as it is, since the bot refuses it before a lookup or connection.
    What the bot will make of the new string is what it would have made of the old one: only
    the authority changes, and a path that the longer authority pushes over the length limit
    is cut at the end."""
    try:
        check_url(value, allow_private=True)
    except UnsafeUrl:
        return value
    scheme_end = value.index(":") + len("://")
    authority_end = scheme_end + len(urlsplit(value).netloc)
    local = (value[:scheme_end] + receiver + value[authority_end:])[:URL_LIMIT]
    check_url(local, allow_private=True)  # a rewrite must never turn valid into invalid
    return local


def _localized(node: Any, receiver: str) -> Any:
    if isinstance(node, str):
        return local_url(node, receiver)
    if isinstance(node, list):
        return [_localized(item, receiver) for item in node]
    if isinstance(node, dict):
        return {key: _localized(item, receiver) for key, item in node.items()}
    return node


def _real_people(case: schemathesis.Case) -> None:
    """Whether a reference names someone is not something a schema can say, so a valid case's
    `people` filter is made of real people's references. (A dictionary would do it only in the
    fuzzing phase: the coverage phase draws its own values.) Valid references replace valid
    ones, so the case stays valid; an invalid case is left as it is."""
    meta = case.meta
    body = case.body
    if meta is None or not meta.generation.mode.is_positive or not isinstance(body, dict):
        return
    people = body.get("people")
    if isinstance(people, list):
        refs = json.loads(os.environ.get(PEOPLE_ENV, "[]"))
        body["people"] = [refs[n % len(refs)] for n in range(len(people))]


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: Any) -> None:
    # A webhook URL is where the bot will connect: the fuzzer invents public names and
    # addresses, and no request may leave this machine, nor wait on a name lookup.
    receiver = os.environ.get(RECEIVER_ENV)
    if case.operation.path.startswith("/webhooks"):
        if receiver is None:
            raise AssertionError(f"{RECEIVER_ENV} is not set: webhook URLs would leave the machine")
        case.body = _localized(case.body, receiver)
        _real_people(case)
    # Any parameter named `timeout` holds the request for up to that many seconds (the gate
    # holds for up to 60, 30 when not given). A valid value is shortened, never made invalid, so
    # a positive case stays positive and a negative one stays negative.
    query = case.query
    if query is None:
        return
    if "timeout" in query:
        seconds = _seconds(query["timeout"])
        if seconds is not None and HOLD_SECONDS < seconds <= 60:
            query["timeout"] = HOLD_SECONDS
    elif "wait" in query:
        query["timeout"] = HOLD_SECONDS


@schemathesis.hook
def after_call(
    context: schemathesis.HookContext, case: schemathesis.Case, response: schemathesis.Response
) -> None:
    target = os.environ.get(ANSWERS_ENV)
    if target:
        with _writing, open(target, "a", encoding="utf-8") as answers:
            answers.write(f"{case.operation.label} {response.status_code}\n")
    pings = os.environ.get(PINGS_ENV)
    if pings and case.operation.path.endswith("/ping") and response.status_code == 200:
        with _writing, open(pings, "a", encoding="utf-8") as out:
            out.write(json.dumps(response.json()) + "\n")
