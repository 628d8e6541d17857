"""Schemathesis hooks for the API fuzz run: held requests cut short, each answer noted."""

from __future__ import annotations

import os
import threading
from typing import Any, Final

import schemathesis

ANSWERS_ENV: Final = "RCSTATUS_FUZZ_ANSWERS"
"""A file to which each answer is appended as `METHOD PATH STATUS`, for the test to read."""
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


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: Any) -> None:
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
