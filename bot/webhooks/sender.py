"""One signed attempt to a receiver: Standard Webhooks headers, guarded DNS, no redirects."""

from __future__ import annotations

import base64
import math
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver
from standardwebhooks.webhooks import Webhook

from bot.webhooks.safety import BlockedAddress, GuardedResolver, UnsafeUrl, check_url

REQUEST_TIMEOUT: Final = 10.0
"""Seconds a receiver has to answer, connection included."""
BODY_LIMIT: Final = 4096
"""Bytes of a receiver's answer read (and thrown away) so the connection can be reused."""
MAX_CONNECTIONS: Final = 1024
"""Dead receivers can hold at most MAX_ENDPOINTS x CONCURRENCY (400) of them (see
bot/webhooks/dispatcher.py); the rest serve the healthy ones' bigger batches."""
CHECKED_URLS: Final = 1024
"""URLs whose form is remembered as checked (their addresses are checked at each connection)."""
SECRET_BYTES: Final = 32
USER_AGENT: Final = "rcstatus-webhooks/1"


def new_secret() -> str:
    """A signing secret in the spec's form: whsec_ and base64 of random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def readable_url(url: str) -> str:
    """Scheme, host and port only: paths and queries may carry a receiver's own tokens."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt got: a status when the receiver answered, else why not."""

    status: int | None
    error: str | None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookSender:
    """Posts signed bodies; one connection pool for every endpoint, closed by `close()`.

    Names resolve through `GuardedResolver`, so every connection goes to an address checked
    at that moment. No redirect is followed (a 3xx is a failure), no cookie kept, no proxy from
    the environment used, and at most BODY_LIMIT bytes of any answer read.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout: float = REQUEST_TIMEOUT,
        resolver: Callable[[], AbstractResolver] = ThreadedResolver,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._allow_private = allow_private
        self._timeout = timeout
        self._resolver = resolver
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._usable: dict[str, bool] = {}

    @property
    def timeout(self) -> float:
        return self._timeout

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self._resolver(), allow_private=self._allow_private),
                limit=MAX_CONNECTIONS,
                # One receiver's hanging paths must not hold the connections of another
                # endpoint on the same host.
                limit_per_host=0,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _usable_url(self, url: str) -> bool:
        """`check_url`, remembered: it depends only on the URL, and parsing it on every attempt
        was a visible share of the sender's time under load."""
        usable = self._usable.get(url)
        if usable is None:
            try:
                check_url(url, allow_private=self._allow_private)
                usable = True
            except UnsafeUrl:
                usable = False
            if len(self._usable) >= CHECKED_URLS:
                self._usable.clear()
            self._usable[url] = usable
        return usable

    async def send(self, url: str, secret: str, message_id: str, body: str) -> AttemptResult:
        """One attempt, signed now; never raises for anything the receiver or network does."""
        if not self._usable_url(url):
            return AttemptResult(None, "blocked address")
        moment = datetime.fromtimestamp(math.floor(self._clock()), UTC)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, moment, body),
        }
        session = self._open()
        try:
            async with session.post(
                url, data=body.encode(), headers=headers, allow_redirects=False
            ) as response:
                await response.content.read(BODY_LIMIT)
                return AttemptResult(
                    response.status,
                    None if 200 <= response.status < 300 else f"answered {response.status}",
                    _retry_after(response.headers.get("Retry-After"), self._clock()),
                )
        except TimeoutError:
            return AttemptResult(None, "timed out")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):
                return AttemptResult(None, "blocked address")
            if isinstance(exc, aiohttp.ClientConnectorDNSError):
                return AttemptResult(None, "name did not resolve")
            if isinstance(exc, aiohttp.ClientSSLError):
                return AttemptResult(None, "TLS failed")
            return AttemptResult(None, "connection failed")
        except (aiohttp.ClientError, ssl.SSLError, OSError, ValueError):
            # A receiver that drops the line, speaks something else than HTTP, or a URL that
            # aiohttp will not use: all retried like any failure.
            return AttemptResult(None, "connection error")


def _retry_after(raw: str | None, now: float) -> float | None:
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
