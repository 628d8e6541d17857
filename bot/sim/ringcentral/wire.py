"""RingCentral simulator plumbing: error bodies, timestamps, rate limits, faults and counters."""

from __future__ import annotations

import json
import math
import re
import secrets
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any, Final, Literal

from bot.sim.limits import SlidingWindow, TimeScale

Group = Literal["light", "medium", "heavy", "auth"]
GROUPS: Final[tuple[Group, ...]] = ("light", "medium", "heavy", "auth")
DEFAULT_RATE_LIMITS: Final[Mapping[Group, int]] = {
    "light": 50,
    "medium": 40,
    "heavy": 10,
    "auth": 5,
}
RATE_WINDOW_SECONDS: Final = 60.0

_NUMERIC_SEGMENT = re.compile(r"^\d+(,\d+)*$")


def iso_millis(moment: datetime | None = None) -> str:
    """`2025-08-20T22:23:55.169Z`, the form subscriptions and notifications use."""
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_offset(moment: datetime | None = None) -> str:
    """`2020-09-07T21:50:02.737+0000`, the form ConnectionDetails uses."""
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def http_date() -> str:
    return formatdate(usegmt=True)


def request_id() -> str:
    """An RCRequestId-looking value: a UUID with the gateway's numeric suffix."""
    return f"{uuid.uuid4()}-{secrets.randbelow(10_000_000)}-1-1"


def message_id() -> str:
    """A numeric message id like the ones the gateway puts on notifications."""
    return str(secrets.randbits(63))


def reported_seconds(time_scale: TimeScale, simulated: float) -> int:
    """How long something stays valid, as an integer on the wire: scaled, rounded down so a
    client never trusts it too long, and at least 1."""
    return max(1, math.floor(time_scale.seconds(simulated) + 1e-9))


def stats_key(method: str, path: str) -> str:
    """`GET /restapi/v1.0/account/~/extension/{id}/presence`: numeric segments become `{id}`.

    A numeric account id (as in `navigation` URIs) becomes `{accountId}`, so that `{id}` always
    means a per-resource call, the kind a snapshot should not be making.
    """
    trimmed = path.rstrip("/") or "/"
    segments = trimmed.split("/")
    for index, segment in enumerate(segments):
        if _NUMERIC_SEGMENT.match(segment):
            after_account = index > 0 and segments[index - 1] == "account"
            segments[index] = "{accountId}" if after_account else "{id}"
    return f"{method.upper()} {'/'.join(segments)}"


def error_body(code: str, message: str, *, parameter: str | None = None) -> dict[str, Any]:
    """RingCentral's REST error shape: `errorCode`, `message` and the same in `errors[]`."""
    detail: dict[str, Any] = {"errorCode": code, "message": message}
    if parameter is not None:
        detail["parameterName"] = parameter
    return {"errorCode": code, "message": message, "errors": [detail]}


def oauth_error_body(error: str, code: str, message: str) -> dict[str, Any]:
    """The REST error shape plus RFC 6749 `error`/`error_description`, as oauth endpoints send."""
    body = error_body(code, message)
    body["error"] = error
    body["error_description"] = message
    return body


def insufficient_permissions_body(permission: str) -> dict[str, Any]:
    """403 for an app without the permission an endpoint needs, as RingCentral words it."""
    message = (
        f"In order to call this API endpoint, application needs to have [{permission}] permission"
    )
    detail = {"errorCode": "CMN-401", "message": message, "permissionName": permission}
    return {
        "errorCode": "InsufficientPermissions",
        "message": message,
        "errors": [detail],
        "permissionName": permission,
    }


def rate_limited_body() -> dict[str, Any]:
    return error_body("CMN-301", "Request rate exceeded")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of counting one request against its group."""

    group: Group
    headers: dict[str, str]
    retry_after: float | None

    @property
    def allowed(self) -> bool:
        return self.retry_after is None


class RateLimiter:
    """One sliding window per group for the single (user, app) pair the simulator serves."""

    def __init__(
        self,
        limits: Mapping[str, int] | None,
        *,
        time_scale: TimeScale,
        penalty: float,
        clock: Callable[[], float],
    ) -> None:
        merged: dict[str, int] = {group: DEFAULT_RATE_LIMITS[group] for group in GROUPS}
        for name, limit in (limits or {}).items():
            if name not in DEFAULT_RATE_LIMITS:
                raise ValueError(f"unknown rate-limit group {name!r}")
            merged[name] = limit
        self._time_scale = time_scale
        # A wait, unlike a lifetime, is rounded up so that a client waiting it out is not early.
        self._window_header = time_scale.retry_after_header(time_scale.seconds(RATE_WINDOW_SECONDS))
        self._windows: dict[str, SlidingWindow] = {
            name: SlidingWindow(
                limit=limit,
                window=time_scale.seconds(RATE_WINDOW_SECONDS),
                penalty=time_scale.seconds(penalty),
                clock=clock,
            )
            for name, limit in merged.items()
        }

    def admit(self, group: Group) -> Admission:
        window = self._windows[group]
        wait = window.try_acquire()
        headers = {
            "X-Rate-Limit-Group": group,
            "X-Rate-Limit-Limit": str(window.limit),
            "X-Rate-Limit-Remaining": str(window.remaining()),
            "X-Rate-Limit-Window": self._window_header,
        }
        if wait is not None:
            headers["Retry-After"] = self._time_scale.retry_after_header(wait)
        return Admission(group=group, headers=headers, retry_after=wait)


@dataclass(slots=True)
class Fault:
    """The next `remaining` requests matching `pattern` get `status` instead of an answer."""

    fault_id: int
    pattern: str
    status: int
    remaining: int
    retry_after: float | None
    method: str | None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        template = stats_key(method, path).split(" ", 1)[1]
        trimmed = path.rstrip("/") or "/"
        pattern = _path_glob(self.pattern)
        return any(pattern.fullmatch(candidate) for candidate in (trimmed, template))

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.fault_id,
            "path": self.pattern,
            "status": self.status,
            "count": self.remaining,
            "retry_after": self.retry_after,
            "method": self.method,
        }


def _path_glob(pattern: str) -> re.Pattern[str]:
    """`*` matches within one path segment, `**` across segments; everything else is literal."""
    parts = re.split(r"(\*\*|\*)", pattern.rstrip("/") or "/")
    wild = {"**": ".*", "*": "[^/]*"}
    return re.compile("".join(wild.get(part, re.escape(part)) for part in parts))


_FAULT_ERRORS: Final[Mapping[int, tuple[str, str]]] = {
    400: ("CMN-101", "Parameter value is invalid"),
    401: ("TokenInvalid", "OAuth token is invalid"),
    403: ("CMN-401", "Specific application permission required"),
    404: ("CMN-102", "Resource is not found"),
    429: ("CMN-301", "Request rate exceeded"),
    500: ("CMN-203", "Internal Server Error"),
    502: ("CMN-201", "Service Temporary Unavailable"),
    503: ("CMN-201", "Service Temporary Unavailable"),
    504: ("CMN-201", "Service Temporary Unavailable"),
}


@dataclass(frozen=True, slots=True)
class FaultResponse:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


class FaultBook:
    """Injected failures, consumed in the order they were added."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(
        self,
        pattern: str,
        status: int,
        count: int = 1,
        retry_after: float | None = None,
        method: str | None = None,
    ) -> Fault:
        if not 400 <= status <= 599:
            raise ValueError("fault status must be 4xx or 5xx")
        if count < 1:
            raise ValueError("fault count must be at least 1")
        fault = Fault(self._next_id, pattern, status, count, retry_after, method)
        self._next_id += 1
        self._faults.append(fault)
        return fault

    def clear(self) -> int:
        cleared = len(self._faults)
        self._faults.clear()
        return cleared

    def pending(self) -> list[dict[str, Any]]:
        return [fault.describe() for fault in self._faults]

    def take(self, method: str, path: str) -> FaultResponse | None:
        for fault in self._faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return self._response(fault)
        return None

    @staticmethod
    def _response(fault: Fault) -> FaultResponse:
        code, message = _FAULT_ERRORS.get(fault.status, ("CMN-203", "Injected failure"))
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = TimeScale.retry_after_header(fault.retry_after)
        return FaultResponse(fault.status, headers, error_body(code, message))


@dataclass(slots=True)
class Stats:
    """What clients did to the simulator, for tests and benchmarks to read."""

    requests: Counter[str] = field(default_factory=Counter)
    groups: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    rate_limited_by_group: Counter[str] = field(default_factory=Counter)
    faults: int = 0
    logins: int = 0
    refreshes: int = 0
    ws_tokens: int = 0
    client_requests: int = 0
    notifications: int = 0
    notifications_buffered: int = 0
    notifications_replayed: int = 0
    sockets_opened: int = 0
    subscriptions_created: int = 0

    def count_request(self, method: str, path: str) -> None:
        self.requests[stats_key(method, path)] += 1

    def count_admission(self, admission: Admission) -> None:
        self.groups[admission.group] += 1
        if not admission.allowed:
            self.rate_limited += 1
            self.rate_limited_by_group[admission.group] += 1

    def reset(self) -> None:
        fresh = Stats()
        for spec in fields(self):
            setattr(self, spec.name, getattr(fresh, spec.name))

    def snapshot(self, *, sockets: int, ws_sessions: int, subscriptions: int) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "groups": {group: self.groups.get(group, 0) for group in GROUPS},
            "rate_limited": self.rate_limited,
            "rate_limited_by_group": {
                group: self.rate_limited_by_group.get(group, 0) for group in GROUPS
            },
            "faults": self.faults,
            "logins": self.logins,
            "refreshes": self.refreshes,
            "ws_tokens": self.ws_tokens,
            "client_requests": self.client_requests,
            "notifications": self.notifications,
            "notifications_buffered": self.notifications_buffered,
            "notifications_replayed": self.notifications_replayed,
            "sockets": sockets,
            "sockets_opened": self.sockets_opened,
            "ws_sessions": ws_sessions,
            "subscriptions": subscriptions,
            "subscriptions_created": self.subscriptions_created,
        }
