"""The door of /slack/events: only a signed, fresh, small, readable request reaches Bolt."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from typing import Final

from aiohttp import web
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import Clock, SignatureVerifier

from bot.slack.quiet_log import QuietLog

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 1024 * 1024
"""Slack's largest payloads (a Home view, a long message) are tens of kilobytes; aiohttp's own
default cap is the same mebibyte."""
TIMESTAMP_WINDOW: Final = 300
"""Slack's replay window: a request older or newer than five minutes is refused."""
MAX_TIMESTAMP_DIGITS: Final = 12
MAX_SIGNATURE_LENGTH: Final = 100
"""`v0=` and 64 hex digits; anything much longer is not a signature."""


class Refusal(enum.Enum):
    """Why a request was turned away, with its HTTP status and the words of its log line."""

    NO_TIMESTAMP = (401, "no X-Slack-Request-Timestamp")
    BAD_TIMESTAMP = (401, "a timestamp that is not a whole number of seconds")
    STALE_TIMESTAMP = (401, "a timestamp outside Slack's five-minute window")
    NO_SIGNATURE = (401, "no usable X-Slack-Signature")
    TOO_LARGE = (413, "a body over the size limit")
    NOT_UTF8 = (401, "a body that is not UTF-8, which no Slack signature covers")
    BAD_SIGNATURE = (401, "a signature that does not match")
    UNREADABLE = (400, "a signed body that is not a Slack payload")

    @property
    def status(self) -> int:
        return int(self.value[0])

    @property
    def reason(self) -> str:
        return str(self.value[1])


class EventsGate:
    """Checks what can be checked without trusting the body, then hands Bolt a parsed request.

    The order matters: headers, size, signature over the exact bytes, and only then decoding and
    parsing, so nothing unauthenticated reaches code that can raise.
    """

    def __init__(
        self,
        signing_secret: str,
        *,
        max_body: int = MAX_BODY_BYTES,
        refusals: QuietLog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = SignatureVerifier(signing_secret, clock=_Clock(clock))
        self._max_body = max_body
        self._refusals = refusals or QuietLog(log)
        self._clock = clock

    async def admit(self, request: web.Request) -> AsyncBoltRequest | web.Response:
        """The request for Bolt, or the response that refuses it."""
        timestamp = request.headers.get("X-Slack-Request-Timestamp")
        signature = request.headers.get("X-Slack-Signature")
        refusal = self._check_headers(timestamp, signature)
        if refusal is None and (request.content_length or 0) > self._max_body:
            refusal = Refusal.TOO_LARGE
        if refusal is not None:
            return self._refuse(refusal)
        assert timestamp is not None
        assert signature is not None
        raw = await self._read(request)
        if raw is None:
            return self._refuse(Refusal.TOO_LARGE)
        try:
            # slack_sdk's verifier hashes the body as UTF-8 text, as Slack signs it.
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return self._refuse(Refusal.NOT_UTF8)
        if not self._verifier.is_valid(body=text, timestamp=timestamp, signature=signature):
            return self._refuse(Refusal.BAD_SIGNATURE)
        try:
            bolt_request = AsyncBoltRequest(
                body=text,
                query=request.query_string,
                headers={key: request.headers.getall(key) for key in request.headers},
            )
        except Exception:  # a signed body Bolt cannot read is refused, not crashed on
            return self._refuse(Refusal.UNREADABLE)
        if not isinstance(bolt_request.body, dict):
            return self._refuse(Refusal.UNREADABLE)
        return bolt_request

    def _check_headers(self, timestamp: str | None, signature: str | None) -> Refusal | None:
        if not timestamp:
            return Refusal.NO_TIMESTAMP
        # isdigit alone accepts other scripts' digits, which int() reads but Slack never sends.
        if not (
            timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS
        ):
            return Refusal.BAD_TIMESTAMP
        if abs(self._clock() - int(timestamp)) > TIMESTAMP_WINDOW:
            return Refusal.STALE_TIMESTAMP
        # hmac.compare_digest refuses non-ASCII strings with a TypeError.
        if not signature or not signature.isascii() or len(signature) > MAX_SIGNATURE_LENGTH:
            return Refusal.NO_SIGNATURE
        return None

    async def _read(self, request: web.Request) -> bytes | None:
        """The body, or None as soon as it passes the cap (whatever Content-Length claimed)."""
        parts: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > self._max_body:
                return None
            parts.append(chunk)
        return b"".join(parts)

    def _refuse(self, kind: Refusal) -> web.Response:
        self._refusals.warning(kind, "refused a request to /slack/events with %s", kind.reason)
        return web.Response(status=kind.status, text=_WORDS[kind.status])


_WORDS: Final = {
    400: "This is not a Slack request the app can read.",
    401: "This request is not signed by Slack.",
    413: "This request is too large.",
}


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()
