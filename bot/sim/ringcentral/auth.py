"""RingCentral simulator OAuth: app credentials, sessions, access/refresh and WebSocket tokens."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from bot.sim.limits import TimeScale
from bot.sim.ringcentral.switches import Switches
from bot.sim.ringcentral.wire import reported_seconds

# The permissions ticked on the simulated app; the token's `scope` lists exactly these.
APP_PERMISSIONS: Final = (
    "ReadAccounts",
    "ReadPresence",
    "SubscriptionWebSocket",
    # PUT presence, for huddle → Busy (docs/controls.md).
    "EditPresence",
)
JWT_GRANT: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# DG: tokens die when "the application reached the limit (usually five) of parallel active sessions
# for the same user"; which session goes is unconfirmed, so the oldest one does.
MAX_PARALLEL_SESSIONS: Final = 5
# Reusable WebSocket tokens with a long life could pile up; the oldest goes first past this.
MAX_LIVE_WS_TOKENS: Final = 10_000


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the app and its service user would copy from the developer console."""

    client_id: str
    client_secret: str
    jwt: str

    @classmethod
    def for_seed(cls, seed: int, *, owner_id: int, account_id: int) -> Credentials:
        def derive(label: str) -> bytes:
            return hashlib.sha256(f"rcstatus-sim:{label}:{seed}".encode()).digest()

        client_id = _b64url(derive("client-id"))[:22]
        client_secret = _b64url(derive("client-secret"))[:43]
        header = _b64url(b'{"typ":"JWT","alg":"RS256"}')
        claims = (
            f'{{"aud":"https://platform.ringcentral.com/restapi/oauth/token",'
            f'"sub":"{owner_id}","iss":"https://platform.ringcentral.com",'
            f'"exp":3900000000,"iat":1700000000,"jti":"{_b64url(derive("jti"))[:22]}",'
            f'"account":"{account_id}"}}'
        )
        jwt = f"{header}.{_b64url(claims.encode())}.{_b64url(derive('jwt-signature') * 8)}"
        return cls(client_id, client_secret, jwt)


@dataclass(slots=True)
class OAuthSession:
    """One JWT exchange and every token refreshed from it."""

    session_id: str
    owner_id: int
    created: float
    access_token: str
    access_expires: float
    refresh_token: str
    refresh_expires: float
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """Why a request was refused, ready to render in RingCentral's error shapes."""

    status: int
    code: str
    message: str
    oauth_error: str | None = None


@dataclass(frozen=True, slots=True)
class TokenGrant:
    session: OAuthSession
    body: dict[str, Any]


@dataclass(slots=True)
class _WsToken:
    session: OAuthSession
    expires: float


@dataclass(slots=True)
class AuthService:
    """Issues and checks tokens; every expiry uses the injected clock and scaled TTLs."""

    credentials: Credentials
    owner_id: int
    clock: Callable[[], float]
    time_scale: TimeScale
    access_token_ttl: float
    refresh_token_ttl: float
    switches: Switches
    on_session_end: Callable[[str], None]
    permissions: frozenset[str] = frozenset(APP_PERMISSIONS)
    _sessions: dict[str, OAuthSession] = field(default_factory=dict)
    _by_access: dict[str, OAuthSession] = field(default_factory=dict)
    _by_refresh: dict[str, OAuthSession] = field(default_factory=dict)
    _ws_tokens: dict[str, _WsToken] = field(default_factory=dict)
    # Every credential handed out, newest last, so tests can prove none of them reached a log.
    issued: deque[str] = field(default_factory=lambda: deque(maxlen=10_000))

    # ---- client authentication -----------------------------------------------------------------

    def check_client(self, authorization: str | None) -> AuthFailure | None:
        """Basic client auth; a confidential (server) app must always send it."""
        if not authorization or not authorization.startswith("Basic "):
            return AuthFailure(
                401, "OAU-123", "Client authentication is required", "invalid_client"
            )
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return AuthFailure(
                401, "OAU-123", "Invalid Authorization header value", "invalid_client"
            )
        client_id, _, secret = decoded.partition(":")
        good_id = hmac.compare_digest(client_id, self.credentials.client_id)
        good_secret = hmac.compare_digest(secret, self.credentials.client_secret)
        if not (good_id and good_secret):
            return AuthFailure(401, "OAU-123", f"Invalid client: {client_id}", "invalid_client")
        return None

    # ---- grants --------------------------------------------------------------------------------

    def login_jwt(self, assertion: str, form: dict[str, str]) -> TokenGrant | AuthFailure:
        if not hmac.compare_digest(assertion, self.credentials.jwt):
            return AuthFailure(
                400, "OAU-140", "Invalid resource owner credentials", "invalid_grant"
            )
        now = self.clock()
        self._evict_beyond_limit()
        session = OAuthSession(
            session_id=secrets.token_hex(16),
            owner_id=self.owner_id,
            created=now,
            access_token="",
            access_expires=0.0,
            refresh_token="",
            refresh_expires=0.0,
        )
        self._sessions[session.session_id] = session
        return TokenGrant(session, self._issue(session, form))

    def refresh(self, refresh_token: str, form: dict[str, str]) -> TokenGrant | AuthFailure:
        session = self._by_refresh.get(refresh_token)
        if session is None or session.revoked:
            return AuthFailure(400, "OAU-211", "Token revoked", "invalid_grant")
        if self.clock() >= session.refresh_expires:
            self._end(session)
            return AuthFailure(400, "OAU-211", "Refresh token expired", "invalid_grant")
        return TokenGrant(session, self._issue(session, form))

    def _issue(self, session: OAuthSession, form: dict[str, str]) -> dict[str, Any]:
        """New access and refresh tokens; the previous pair dies at once (refresh is single-use)."""
        self._by_access.pop(session.access_token, None)
        self._by_refresh.pop(session.refresh_token, None)
        access_ttl = self._requested_ttl(form.get("access_token_ttl"), self.access_token_ttl)
        refresh_ttl = self._requested_ttl(form.get("refresh_token_ttl"), self.refresh_token_ttl)
        now = self.clock()
        session.access_token = secrets.token_urlsafe(40)
        session.refresh_token = secrets.token_urlsafe(40)
        session.access_expires = now + self.time_scale.seconds(access_ttl)
        session.refresh_expires = now + self.time_scale.seconds(refresh_ttl)
        self._by_access[session.access_token] = session
        self._by_refresh[session.refresh_token] = session
        self.issued.extend((session.access_token, session.refresh_token))
        return {
            "access_token": session.access_token,
            "token_type": "bearer",
            "expires_in": reported_seconds(self.time_scale, access_ttl),
            "refresh_token": session.refresh_token,
            "refresh_token_expires_in": reported_seconds(self.time_scale, refresh_ttl),
            "scope": " ".join(p for p in APP_PERMISSIONS if p in self.permissions),
            "owner_id": str(session.owner_id),
            "endpoint_id": secrets.token_urlsafe(16),
            "session_id": session.session_id,
        }

    @staticmethod
    def _requested_ttl(requested: str | None, app_default: float) -> float:
        """A client may ask for a shorter token life than the app's, never a longer one."""
        if requested is None:
            return app_default
        try:
            value = float(requested)
        except ValueError:
            return app_default
        return min(value, app_default) if value > 0 else app_default

    def _evict_beyond_limit(self) -> None:
        live = [s for s in self._sessions.values() if not s.revoked]
        live.sort(key=lambda s: s.created)
        while len(live) >= MAX_PARALLEL_SESSIONS:
            self._end(live.pop(0))

    def lacking(self, *permissions: str) -> str | None:
        """The first of `permissions` the app was not granted, if any."""
        return next((p for p in permissions if p not in self.permissions), None)

    # ---- bearer checks -------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> OAuthSession | AuthFailure:
        if not authorization or not authorization.lower().startswith("bearer "):
            return AuthFailure(401, "OAU-134", "Invalid Authorization header")
        token = authorization[7:].strip()
        session = self._by_access.get(token)
        if session is None or session.revoked:
            return AuthFailure(401, "OAU-149", "OAuth token is invalid")
        if self.clock() >= session.access_expires:
            return AuthFailure(401, "OAU-128", "Access token expired")
        return session

    # ---- WebSocket tokens ----------------------------------------------------------------------

    def issue_ws_token(self, session: OAuthSession) -> dict[str, Any]:
        now = self.clock()
        expired = [t for t, entry in self._ws_tokens.items() if entry.expires <= now]
        for token in expired:
            del self._ws_tokens[token]
        while len(self._ws_tokens) >= MAX_LIVE_WS_TOKENS:
            del self._ws_tokens[next(iter(self._ws_tokens))]
        token = secrets.token_urlsafe(32)
        self.issued.append(token)
        ttl = self.switches.ws_token_ttl
        reported = reported_seconds(self.time_scale, ttl)
        # Never refuse a token before the whole seconds `expires_in` promised (at least 1): a
        # client that reuses it until 80 % of that (RingCentral's own library does) must not be
        # refused early, and a scaled life of milliseconds is shorter than a loopback connect.
        lifetime = max(self.time_scale.seconds(ttl), float(reported))
        self._ws_tokens[token] = _WsToken(session, now + lifetime)
        return {"ws_access_token": token, "expires_in": reported}

    def consume_ws_token(self, token: str | None) -> OAuthSession | None:
        """The session behind a WebSocket token; single-use unless that switch is off."""
        if not token:
            return None
        if self.switches.ws_token_single_use:
            entry = self._ws_tokens.pop(token, None)
        else:
            entry = self._ws_tokens.get(token)
        if entry is None or entry.session.revoked or self.clock() >= entry.expires:
            return None
        return entry.session

    # ---- ending sessions -----------------------------------------------------------------------

    def revoke(self, token: str) -> bool:
        """Revoking any token of a session ends the whole session."""
        session = self._by_access.get(token) or self._by_refresh.get(token)
        if session is None:
            return False
        self._end(session)
        return True

    def revoke_all(self) -> int:
        live = [s for s in self._sessions.values() if not s.revoked]
        for session in live:
            self._end(session)
        return len(live)

    def expire_access_tokens(self) -> int:
        now = self.clock()
        live = [s for s in self._sessions.values() if not s.revoked and s.access_expires > now]
        for session in live:
            session.access_expires = now
        return len(live)

    def live_sessions(self) -> int:
        return sum(1 for s in self._sessions.values() if not s.revoked)

    def _end(self, session: OAuthSession) -> None:
        session.revoked = True
        self._by_access.pop(session.access_token, None)
        self._by_refresh.pop(session.refresh_token, None)
        self._sessions.pop(session.session_id, None)
        for token in [t for t, e in self._ws_tokens.items() if e.session is session]:
            del self._ws_tokens[token]
        self.on_session_end(session.session_id)
