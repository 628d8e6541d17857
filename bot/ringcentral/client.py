"""RingCentral REST from asyncio: JWT login, early refresh, rate groups, retries, safe errors."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeVar
from urllib.parse import urlencode

from ringcentral import SDK

from bot.config import Secret
from bot.errors import BotError
from bot.ringcentral.permissions import AppPermission

log = logging.getLogger(__name__)

T = TypeVar("T")
RateGroup = Literal["light", "medium", "heavy", "auth"]

# RingCentral's default per-user limits per minute (reference/ringcentral.md §6). An app may be
# granted more; the X-Rate-Limit-Limit header then raises our budget to match.
DEFAULT_LIMITS: Final[Mapping[RateGroup, int]] = {"light": 50, "medium": 40, "heavy": 10, "auth": 5}
DEFAULT_RETRY_AFTER: Final = 30.0
DEFAULT_MAX_ATTEMPTS: Final = 4
TOKEN_PATH: Final = "/restapi/oauth/token"  # noqa: S105 - a URL path, not a secret
REVOKE_PATH: Final = "/restapi/oauth/revoke"
WSTOKEN_PATH: Final = "/restapi/oauth/wstoken"
# Refresh once this share of the access token's life has passed, well before it dies.
REFRESH_AT_SHARE_OF_LIFETIME: Final = 0.8
# A WebSocket token is offered again only within this share of its life, as RingCentral's own
# WebSocket library does (reference §5.2); whether the gateway takes it twice is UNCONFIRMED.
REUSE_WS_TOKEN_SHARE_OF_LIFETIME: Final = 0.8
# Where the last WebSocket token rides in the saved session, beside the SDK's own fields.
_KEPT_WS_TOKEN: Final = "rcstatus_ws_token"  # noqa: S105 - a key name, not a secret

_ACCOUNT_PRESENCE = re.compile(r"/restapi/v1\.0/account/[^/]+/presence$")
_EXTENSION_LIST = re.compile(r"/restapi/v1\.0/account/[^/]+/extension$")
_SUBSCRIPTION_WRITE = re.compile(r"/restapi/v1\.0/subscription(/[^/]+)?$")
_EXTENSION_PRESENCE = re.compile(r"/restapi/v1\.0/account/[^/]+/extension/[^/]+/presence$")


def rate_group(method: str, path: str) -> RateGroup:
    """The rate-limit group RingCentral counts a request in (reference §6)."""
    path = path.split("?", 1)[0].rstrip("/")
    if path.startswith("/restapi/oauth/"):
        return "auth"
    if method == "GET" and _ACCOUNT_PRESENCE.search(path):
        return "heavy"
    if method == "GET" and _EXTENSION_LIST.search(path):
        return "medium"
    if method in ("POST", "PUT", "DELETE") and _SUBSCRIPTION_WRITE.search(path):
        return "medium"
    if method == "PUT" and _EXTENSION_PRESENCE.search(path):
        return "medium"
    return "light"


class RingCentralError(BotError):
    """A RingCentral call failed; the message carries no token, JWT or client secret."""

    def __init__(
        self, message: str, *, status: int | None = None, error_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class RingCentralAuthError(RingCentralError):
    """Our credentials were refused: wrong client id/secret, a revoked or expired JWT."""


class ClientCredentialsRefused(RingCentralAuthError):
    """RingCentral refused the app's client id or secret (OAU-123 invalid_client)."""


class JwtFlowNotAllowed(RingCentralAuthError):
    """The app is not set up for the JWT auth flow (OAU-112 unauthorized_client)."""


class JwtRefused(RingCentralAuthError):
    """The JWT was refused (invalid_grant): expired, revoked, or made for another app."""


class RingCentralRateLimited(RingCentralError):
    """RingCentral answered 429; the request's rate group stays closed for its Retry-After."""


class RingCentralPermissionError(RingCentralError):
    """The app lacks a permission (ReadAccounts, ReadPresence, WebSocket Subscriptions)."""


class RingCentralUnavailable(RingCentralError):
    """RingCentral kept failing (5xx, timeouts, refused connections) after our retries."""


@dataclass(frozen=True, slots=True)
class Response:
    """What we keep of an HTTP response: status, headers and the decoded JSON body."""

    status: int
    headers: Mapping[str, str]
    body: Any


@dataclass(frozen=True, slots=True)
class WsToken:
    uri: str
    token: Secret
    expires_in: float


@dataclass(frozen=True, slots=True)
class _KeptWsToken:
    """The last WebSocket token issued, with when (on our monotonic clock) it expires."""

    ws: WsToken
    expires_at: float

    def as_data(self, now: float) -> dict[str, Any]:
        # Saved with a wall-clock expiry: the next process's monotonic clock starts elsewhere.
        return {
            "uri": self.ws.uri,
            "token": self.ws.token.reveal(),
            "expires_in": self.ws.expires_in,
            "expires_at": time.time() + (self.expires_at - now),
        }

    @classmethod
    def from_data(cls, data: object, now: float) -> _KeptWsToken | None:
        if not isinstance(data, dict):
            return None
        uri, token = data.get("uri"), data.get("token")
        expires_in, expires_at = data.get("expires_in"), data.get("expires_at")
        if not (isinstance(uri, str) and isinstance(token, str)):
            return None
        if not (isinstance(expires_in, int | float) and isinstance(expires_at, int | float)):
            return None
        ws = WsToken(uri=uri, token=Secret(token), expires_in=float(expires_in))
        return cls(ws, now + (float(expires_at) - time.time()))

    def reusable(self, now: float) -> bool:
        """True while less than 80 % of its life has passed; never past that."""
        unused_share = 1 - REUSE_WS_TOKEN_SHARE_OF_LIFETIME
        return self.ws.expires_in > 0 and self.expires_at - now > self.ws.expires_in * unused_share


class SessionKeeper(Protocol):
    """Where the session's token data waits between runs (bot/ringcentral/vault.py)."""

    async def load(self) -> dict[str, Any] | None: ...
    async def save(self, data: Mapping[str, Any]) -> None: ...
    async def forget(self) -> None: ...


class PlatformLike(Protocol):
    """The parts of the `ringcentral` SDK's Platform we drive (blocking; run in a thread)."""

    def login(self, *, jwt: str) -> Any: ...
    def refresh(self) -> Any: ...
    def get(self, url: str) -> Any: ...
    def post(self, url: str, body: Any = None) -> Any: ...
    def put(self, url: str, body: Any = None) -> Any: ...
    def auth(self) -> Any: ...
    def logout(self) -> Any: ...


@dataclass(slots=True)
class _GroupState:
    """Our side of one rate group: a sliding window of sends and any penalty RingCentral imposed."""

    limit: int
    sent: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


@dataclass(slots=True)
class ClientStats:
    requests: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    retries: int = 0
    logins: int = 0
    resumed: int = 0
    refreshes: int = 0
    unauthorized: int = 0


class RingCentralClient:
    """One JWT session, shared by every caller; never sends into a penalised rate group."""

    def __init__(
        self,
        *,
        server_url: str,
        client_id: str,
        client_secret: Secret,
        jwt: Secret,
        rate_window: float = 60.0,
        limits: Mapping[RateGroup, int] = DEFAULT_LIMITS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        platform: PlatformLike | None = None,
        session: SessionKeeper | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._platform: PlatformLike = (
            platform or SDK(client_id, client_secret.reveal(), server_url.rstrip("/")).platform()
        )
        self._secrets = tuple(
            s for s in (client_secret.reveal(), jwt.reveal(), client_id) if len(s) >= 6
        )
        self._jwt = jwt
        self._session = session
        self._server_url = server_url.rstrip("/")
        self._rate_window = rate_window
        self._groups: dict[RateGroup, _GroupState] = {
            group: _GroupState(limit) for group, limit in limits.items()
        }
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._clock = clock
        self._sleep = sleep
        self._auth_lock = asyncio.Lock()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._gate = asyncio.Event()  # cleared while the token is being replaced
        self._gate.set()
        self._logged_in = False
        self._token_expires_at = 0.0
        self._token_lifetime = 0.0
        self._kept_ws_token: _KeptWsToken | None = None
        self.stats = ClientStats()

    # ----------------------------------------------------------------------------- auth

    async def login(self) -> None:
        """Exchange the JWT for a token (a new OAuth session). Idempotent once logged in.

        Raises:
            ClientCredentialsRefused, JwtFlowNotAllowed, JwtRefused: the credentials, by cause.
            RingCentralRateLimited: the Auth group is closed for now.
            RingCentralUnavailable: RingCentral could not be reached, or kept failing.
            RingCentralError: any other refusal.
        """
        async with self._auth_lock:
            if not self._logged_in and not await self._resume():
                await self._replace_token(refresh=False)

    async def _resume(self) -> bool:
        """Take up the session a previous run saved: its access token while it has life left,
        else its refresh token. A JWT login is the last resort: RingCentral allows 5 a minute.
        A token that turns out dead is met by the 401 path (refresh, then login)."""
        data = await self._session.load() if self._session is not None else None
        if not data:
            return False
        data = dict(data)
        self._kept_ws_token = _KeptWsToken.from_data(data.pop(_KEPT_WS_TOKEN, None), self._clock())
        try:
            self._platform.auth().set_data(data)
        except (AttributeError, TypeError):
            return False
        self._note_token_lifetime()
        remaining = self._token_expires_at - self._clock()
        if remaining > self._token_lifetime * (1 - REFRESH_AT_SHARE_OF_LIFETIME):
            self._logged_in = True
            self.stats.resumed += 1
            log.info("RingCentral session resumed from the store: no login needed")
            return True
        if not self._has_live_refresh_token():
            return False
        await self._replace_token(refresh=True)
        return True

    async def logout(self) -> None:
        """End our OAuth session, revoking its tokens: RingCentral allows few parallel sessions
        per user (reference §1.5), so a short-lived client must not leave its own behind.

        One attempt, and none while the Auth group is closed: an unrevoked session just expires.
        Meant for a client that is done: a request made afterwards logs in again (a new session),
        and one made while the token is being revoked fails.
        """
        async with self._auth_lock:
            if not self._logged_in:
                return
            self._gate.clear()
            try:
                await self._idle.wait()
                if self._group_wait("auth") > 0:
                    raise RingCentralRateLimited(
                        "RingCentral POST /restapi/oauth/revoke not sent: the Auth group is closed"
                    )
                await self._send(
                    "POST", REVOKE_PATH, self._platform.logout, skip_gate=True, attempts=1
                )
                self._logged_in = False
                self._kept_ws_token = None
                if self._session is not None:
                    await self._session.forget()
                log.info("RingCentral session ended")
            finally:
                self._gate.set()

    def granted_permissions(self) -> frozenset[str] | None:
        """The app permissions the current token carries (its `scope`); None if it did not say."""
        try:
            scope = self._platform.auth().data().get("scope")
        except (AttributeError, TypeError):
            return None
        return frozenset(str(scope).split()) if scope else None

    async def probe_permission(
        self, permission: AppPermission, call: Callable[[], Awaitable[T]]
    ) -> T:
        """Make a call that needs `permission`: its answer is the proof, the token's scope a hint.

        Raises:
            RingCentralPermissionError: RingCentral refused for want of the permission, or the
                call failed otherwise while the token's scope does not list the permission.
            RingCentralError: the call failed for another reason.
        """
        try:
            return await call()
        except RingCentralPermissionError:
            raise
        except RingCentralError as exc:
            granted = self.granted_permissions()
            if granted is None or granted.intersection(permission.scope_names):
                raise
            raise RingCentralPermissionError(
                f"{exc} (the token lacks the {permission.label} permission)",
                status=exc.status,
                error_code=exc.error_code,
            ) from None

    async def _replace_token(self, *, refresh: bool) -> None:
        """Swap the access token while no request is in flight: a refresh kills the old token."""
        self._gate.clear()
        try:
            await self._idle.wait()
            if refresh and self._has_live_refresh_token():
                try:
                    await self._call_auth(self._platform.refresh)
                    self._logged_in = True
                    self.stats.refreshes += 1
                    log.info("RingCentral access token refreshed")
                    await self._keep_session()
                    return
                except RingCentralError as exc:
                    if isinstance(exc, RingCentralUnavailable | RingCentralRateLimited):
                        raise
                    log.warning(
                        "RingCentral refresh refused (%s); logging in with the JWT again", exc
                    )
            jwt = self._jwt.reveal()
            try:
                await self._call_auth(lambda: self._platform.login(jwt=jwt))
            except RingCentralError as exc:
                raise _login_refusal(exc) from None
            self._logged_in = True
            self.stats.logins += 1
            # A WebSocket token belongs to the session it was issued in, which has just ended.
            self._kept_ws_token = None
            log.info("RingCentral login with JWT succeeded")
            await self._keep_session()
        finally:
            self._note_token_lifetime()
            self._gate.set()

    async def _keep_session(self) -> None:
        if self._session is None:
            return
        try:
            data = dict(self._platform.auth().data())
        except (AttributeError, TypeError):
            return
        if self._kept_ws_token is not None:
            data[_KEPT_WS_TOKEN] = self._kept_ws_token.as_data(self._clock())
        await self._session.save(data)

    def _has_live_refresh_token(self) -> bool:
        """Refresh tokens are optional in RingCentral apps and die after a week; check first."""
        try:
            auth = self._platform.auth()
            return bool(auth.refresh_token()) and bool(auth.refresh_token_valid())
        except (AttributeError, TypeError):
            return False

    def _note_token_lifetime(self) -> None:
        try:
            data = self._platform.auth().data()
            expires_in = float(data.get("expires_in") or 0)
            expire_time = float(data.get("expire_time") or 0)
        except (AttributeError, TypeError, ValueError):
            return
        self._token_lifetime = expires_in
        # The SDK keeps wall-clock expiry; convert to our monotonic clock once.
        self._token_expires_at = self._clock() + max(0.0, expire_time - time.time())

    async def _call_auth(self, action: Callable[[], Any]) -> None:
        await self._send("POST", TOKEN_PATH, action, skip_gate=True)

    async def _ensure_fresh_token(self) -> None:
        if not self._logged_in:
            await self.login()
            return
        remaining = self._token_expires_at - self._clock()
        if remaining > self._token_lifetime * (1 - REFRESH_AT_SHARE_OF_LIFETIME):
            return
        async with self._auth_lock:
            remaining = self._token_expires_at - self._clock()
            if remaining <= self._token_lifetime * (1 - REFRESH_AT_SHARE_OF_LIFETIME):
                await self._replace_token(refresh=True)

    async def keep_token_fresh(self) -> None:
        """Refresh ahead of expiry even while idle, so a reconnect never waits on a dead token."""
        await self.login()
        while True:
            refresh_at = self._token_expires_at - self._token_lifetime * (
                1 - REFRESH_AT_SHARE_OF_LIFETIME
            )
            await self._sleep(max(0.05, refresh_at - self._clock()))
            await self._ensure_fresh_token()

    async def _recover_from_401(self) -> None:
        """A token died under us (revoked, expired out of band): refresh, or log in again."""
        async with self._auth_lock:
            await self._replace_token(refresh=True)

    # ----------------------------------------------------------------------------- requests

    async def get(self, path: str, query: Mapping[str, Any] | None = None) -> Response:
        url = path + ("?" + urlencode(query, doseq=True) if query else "")
        return await self._authed("GET", url, lambda: self._platform.get(url))

    async def _get_path(self, path: str) -> Response:
        return await self._authed("GET", path, lambda: self._platform.get(path))

    async def post(self, path: str, body: Any = None) -> Response:
        return await self._authed("POST", path, lambda: self._platform.post(path, body))

    async def put(self, path: str, body: Any = None) -> Response:
        return await self._authed("PUT", path, lambda: self._platform.put(path, body))

    async def get_records(
        self, path: str, query: Mapping[str, Any] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield each page's `records`, following `navigation.nextPage.uri` until it is absent."""
        response = await self.get(path, query)
        while True:
            body = response.body if isinstance(response.body, dict) else {}
            records = body.get("records")
            yield [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
            next_uri = (body.get("navigation") or {}).get("nextPage", {}).get("uri")
            if not isinstance(next_uri, str) or not next_uri:
                return
            response = await self._get_path(self._relative(next_uri))

    async def ws_token(self) -> WsToken:
        """A new token and URI for a WebSocket connection (Auth group), kept for `kept_ws_token`
        and saved with the session."""
        response = await self.post(WSTOKEN_PATH)
        body = response.body if isinstance(response.body, dict) else {}
        token, uri = body.get("ws_access_token"), body.get("uri")
        if not isinstance(token, str) or not isinstance(uri, str):
            raise RingCentralError("RingCentral returned a WebSocket token without uri or token")
        expires_in = float(body.get("expires_in") or 0)
        issued = WsToken(uri=uri, token=Secret(token), expires_in=expires_in)
        self._kept_ws_token = _KeptWsToken(issued, self._clock() + issued.expires_in)
        await self._keep_session()
        return issued

    async def kept_ws_token(self) -> WsToken | None:
        """The last WebSocket token (this run's, or the saved session's) while less than 80 % of
        its life has passed, else None. The gateway may refuse it (the guide calls a token
        single-use): then `forget_ws_token` it and ask `ws_token` for a new one."""
        await self.login()  # takes up the saved session, and the token saved with it
        kept = self._kept_ws_token
        if kept is None or not kept.reusable(self._clock()):
            return None
        return kept.ws

    def forget_ws_token(self, token: WsToken) -> None:
        """Never offer `token` again (the saved copy is replaced by the next one fetched)."""
        if self._kept_ws_token is not None and self._kept_ws_token.ws == token:
            self._kept_ws_token = None

    def _relative(self, uri: str) -> str:
        """Paging links are absolute; keep following them on the server we were configured with."""
        match = re.match(r"^[a-z]+://[^/]+(/.*)$", uri)
        return match.group(1) if match else uri

    async def _authed(self, method: str, path: str, action: Callable[[], Any]) -> Response:
        await self._ensure_fresh_token()
        try:
            return await self._send(method, path, action)
        except RingCentralAuthError as exc:
            if exc.status != 401:
                raise
            log.warning("RingCentral rejected our access token; renewing it")
            self.stats.unauthorized += 1
            await self._recover_from_401()
            return await self._send(method, path, action)

    async def _send(
        self,
        method: str,
        path: str,
        action: Callable[[], Any],
        *,
        skip_gate: bool = False,
        attempts: int | None = None,
    ) -> Response:
        group = rate_group(method, path)
        key = f"{method} {path.split('?', 1)[0]}"
        attempts = attempts or self._max_attempts
        last_error: RingCentralError | None = None
        for attempt in range(attempts):
            if not skip_gate:
                await self._gate.wait()
            await self._wait_for_group(group)
            self._note_sent(group)
            self.stats.requests[key] = self.stats.requests.get(key, 0) + 1
            self._in_flight += 1
            self._idle.clear()
            try:
                raw = await asyncio.to_thread(action)
                response = self._translate_ok(raw)
            except Exception as exc:  # the SDK raises bare Exception subclasses
                error, retry_in = self._translate_failure(exc, method, path, group, attempt)
                last_error = error
                if retry_in is None or attempt + 1 == attempts:
                    raise error from None
                self.stats.retries += 1
                log.info("%s; retrying in %.1fs", error, retry_in)
                await self._sleep(retry_in)
                continue
            finally:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()
            self._observe_headers(group, response.headers)
            return response
        assert last_error is not None
        raise last_error

    # ----------------------------------------------------------------------------- rate groups

    async def _wait_for_group(self, group: RateGroup) -> None:
        while (wait := self._group_wait(group)) > 0:
            if group == "auth":
                # Said at INFO: a start or a reconnect waiting here looks like a hang otherwise.
                log.info(
                    "RingCentral allows %d logins and WebSocket tokens a minute; waiting %.0fs",
                    self._groups[group].limit,
                    wait,
                )
            else:
                log.debug("RingCentral %s group: holding requests for %.1fs", group, wait)
            await self._sleep(wait)

    def _group_wait(self, group: RateGroup) -> float:
        """How long the group must wait before its next request: a penalty, or a full window."""
        state = self._groups[group]
        now = self._clock()
        while state.sent and state.sent[0] <= now - self._rate_window:
            state.sent.popleft()
        wait = state.blocked_until - now
        if len(state.sent) >= state.limit:
            wait = max(wait, state.sent[0] + self._rate_window - now)
        return wait

    def _note_sent(self, group: RateGroup) -> None:
        self._groups[group].sent.append(self._clock())

    def _observe_headers(self, group: RateGroup, headers: Mapping[str, str]) -> None:
        state = self._groups[group]
        limit = _int_header(headers, "X-Rate-Limit-Limit")
        if limit and limit != state.limit:
            state.limit = limit
        remaining = _int_header(headers, "X-Rate-Limit-Remaining")
        window = _int_header(headers, "X-Rate-Limit-Window")
        if remaining == 0 and window:
            state.blocked_until = max(state.blocked_until, self._clock() + window)

    def penalty_remaining(self, group: RateGroup) -> float:
        return max(0.0, self._groups[group].blocked_until - self._clock())

    # ----------------------------------------------------------------------------- errors

    def _translate_ok(self, raw: Any) -> Response:
        http = raw.response()
        try:
            body = http.json() if http.content else None
        except ValueError:
            body = None
        return Response(status=http.status_code, headers=dict(http.headers), body=body)

    def _translate_failure(
        self, exc: Exception, method: str, path: str, group: RateGroup, attempt: int
    ) -> tuple[RingCentralError, float | None]:
        """Our error for an SDK failure, and how long to wait before retrying (None: don't)."""
        what = f"RingCentral {method} {path.split('?', 1)[0]}"
        http = _http_response_of(exc)
        if http is None:
            return (
                RingCentralUnavailable(
                    f"{what} could not reach RingCentral ({type(exc).__name__})"
                ),
                self._backoff(attempt),
            )
        status = int(http.status_code)
        code, detail = _error_code_and_message(http)
        text = self._redact(f"{what} failed: HTTP {status} {code or ''} {detail}".strip())
        if status == 429:
            retry_after = _float_header(http.headers, "Retry-After") or DEFAULT_RETRY_AFTER
            state = self._groups[group]
            state.blocked_until = max(state.blocked_until, self._clock() + retry_after)
            self.stats.rate_limited += 1
            log.warning("%s; no %s-group requests for %.0fs", text, group, retry_after)
            return RingCentralRateLimited(text, status=status, error_code=code), 0.0
        if status >= 500:
            return RingCentralUnavailable(text, status=status, error_code=code), self._backoff(
                attempt
            )
        if status in (400, 401) and path.startswith("/restapi/oauth/"):
            return RingCentralAuthError(text, status=status, error_code=code), None
        if status == 401:
            return RingCentralAuthError(text, status=status, error_code=code), None
        if status == 403:
            return RingCentralPermissionError(text, status=status, error_code=code), None
        return RingCentralError(text, status=status, error_code=code), None

    def _backoff(self, attempt: int) -> float:
        """Exponential with jitter, so replicas that failed together do not retry together."""
        ceiling: float = min(self._backoff_cap, self._backoff_base * 2.0 ** min(attempt, 10))
        return ceiling * random.uniform(0.5, 1.0)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return re.sub(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", r"\1 [redacted]", text)


def _login_refusal(error: RingCentralError) -> RingCentralError:
    """A failed JWT login as the error that names its cause, judged by RingCentral's error code
    or failing that by its message; any other failure is left as it was."""
    if isinstance(error, RingCentralUnavailable | RingCentralRateLimited):
        return error
    code = (error.error_code or "").lower()
    text = str(error).lower()
    cause: type[RingCentralAuthError]
    if code in ("oau-123", "invalid_client") or "invalid client" in text:
        cause = ClientCredentialsRefused
    elif code in ("oau-112", "unauthorized_client"):
        cause = JwtFlowNotAllowed
    elif code in ("oau-140", "oau-144", "invalid_grant") or "invalid_grant" in text:
        cause = JwtRefused
    else:
        return error
    return cause(str(error), status=error.status, error_code=error.error_code)


def _http_response_of(exc: Exception) -> Any:
    api_response = getattr(exc, "api_response", None)
    if not callable(api_response):
        return None
    try:
        wrapped = api_response()
        return wrapped.response() if wrapped is not None else None
    except Exception:  # a malformed SDK object must not mask the original failure
        return None


def _error_code_and_message(http: Any) -> tuple[str | None, str]:
    try:
        body = http.json()
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    code = body.get("errorCode") or body.get("error")
    message = body.get("message") or body.get("error_description") or ""
    return (str(code) if code else None), str(message)[:200]


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = _float_header(headers, name)
    return int(value) if value is not None else None


def _float_header(headers: Mapping[str, str], name: str) -> float | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            try:
                return float(value)
            except ValueError:
                return None
    return None
