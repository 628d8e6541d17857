"""Slack's OAuth v2: the authorize page, single-use codes, and a scripted install-flow browser."""

from __future__ import annotations

import html
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import aiohttp
from aiohttp import web

from bot.sim.limits import TimeScale
from bot.sim.slack.state import ISSUED_MEMORY, ApiError, Workspace

CODE_LIFETIME = 10 * 60.0
LOGIN_COOKIE = "sim_user"
MAX_REDIRECTS = 8


@dataclass(frozen=True, slots=True)
class Grant:
    code: str
    user_id: str
    bot_scopes: tuple[str, ...]
    user_scopes: tuple[str, ...]
    redirect_uri: str | None
    issued: float


def _scopes(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(dict.fromkeys(s.strip() for s in value.replace(" ", ",").split(",") if s.strip()))


@dataclass(slots=True)
class InstallOutcome:
    """What the scripted browser saw while installing the app for one user."""

    user_id: str
    ok: bool = False
    error: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "user_id": self.user_id,
            "authorized": self.ok,
            "scopes": self.scopes,
            "error": self.error,
            "steps": self.steps,
        }


class OAuth:
    """Issues codes from the authorize page and redeems them in oauth.v2.access."""

    def __init__(self, workspace: Workspace, time_scale: TimeScale) -> None:
        self._workspace = workspace
        self._identity = workspace.identity
        self._code_lifetime = time_scale.seconds(CODE_LIFETIME)
        self._grants: dict[str, Grant] = {}
        self.redeemed: Counter[str] = Counter()
        self.issued_codes: deque[str] = deque(maxlen=ISSUED_MEMORY)

    @staticmethod
    def default_redirect_uri(app_url: str) -> str:
        return f"{app_url.rstrip('/')}/slack/oauth_redirect"

    # -- the authorize page -----------------------------------------------------------------

    async def authorize_page(self, request: web.Request, app_url: str) -> web.Response:
        query = request.query
        if query.get("client_id") != self._identity.client_id:
            return _error_page(400, "invalid_client_id", "This app is not known to Slack.")
        configured = self.default_redirect_uri(app_url)
        redirect_uri = query.get("redirect_uri")
        if redirect_uri and not redirect_uri.startswith(configured):
            # Slack only redirects to (a path under) a Redirect URL configured for the app.
            return _error_page(400, "bad_redirect_uri", f"{redirect_uri} is not {configured}")
        bot_scopes, user_scopes = _scopes(query.get("scope")), _scopes(query.get("user_scope"))
        if not bot_scopes and not user_scopes:
            return _error_page(400, "invalid_scope", "No scopes were requested.")
        user_id = query.get(LOGIN_COOKIE) or request.cookies.get(LOGIN_COOKIE)
        user = self._workspace.users.get(user_id or "")
        if user is None or user.is_bot or user.id not in self._workspace.humans:
            return self._sign_in_page(request)
        target = redirect_uri or configured
        params: dict[str, str] = {}
        if query.get("sim_deny"):
            params["error"] = "access_denied"
        else:
            code = f"{self._identity.client_id.split('.')[0]}.{secrets.token_hex(16)}"
            self._grants[code] = Grant(
                code=code,
                user_id=user.id,
                bot_scopes=bot_scopes,
                user_scopes=user_scopes,
                redirect_uri=redirect_uri,
                issued=time.monotonic(),
            )
            params["code"] = code
            self.issued_codes.append(code)
        if "state" in query:
            params["state"] = query["state"]
        separator = "&" if "?" in target else "?"
        raise web.HTTPFound(f"{target}{separator}{urlencode(params)}")

    def _sign_in_page(self, request: web.Request) -> web.Response:
        """A human opening the page picks who they are; each link re-enters as that user."""
        links = []
        for user in self._workspace.iter_humans():
            query = dict(request.query)
            query[LOGIN_COOKIE] = user.id
            href = html.escape(f"{request.path}?{urlencode(query)}")
            links.append(f'<li><a href="{href}">{html.escape(user.real_name)}</a> ({user.id})</li>')
        body = (
            "<html><body><h1>Sign in to the simulated workspace</h1>"
            f"<p>Choose who approves this app.</p><ul>{''.join(links)}</ul></body></html>"
        )
        return web.Response(status=200, text=body, content_type="text/html")

    # -- oauth.v2.access --------------------------------------------------------------------

    def redeem(self, args: dict[str, Any], basic: tuple[str, str] | None) -> dict[str, Any]:
        client_id, client_secret = basic or (args.get("client_id"), args.get("client_secret"))
        if not client_id:
            raise ApiError("invalid_client_id")
        if client_id != self._identity.client_id:
            raise ApiError("invalid_client_id")
        if client_secret != self._identity.client_secret:
            raise ApiError("bad_client_secret")
        if args.get("grant_type") == "refresh_token":
            raise ApiError("invalid_refresh_token")
        code = str(args.get("code") or "")
        if not code:
            raise ApiError("invalid_code")
        grant = self._grants.pop(code, None)  # single use, even when the rest fails
        if grant is None or time.monotonic() - grant.issued > self._code_lifetime:
            raise ApiError("invalid_code")
        if grant.redirect_uri is not None and args.get("redirect_uri") != grant.redirect_uri:
            raise ApiError("bad_redirect_uri")
        identity = self._identity
        self.redeemed[grant.user_id] += 1
        authed_user: dict[str, Any] = {"id": grant.user_id}
        if grant.user_scopes:
            token = self._workspace.grant_user_token(grant.user_id, grant.user_scopes)
            authed_user.update(
                scope=",".join(sorted(token.scopes)),
                access_token=token.value,
                token_type="user",  # noqa: S106 - a token kind, not a secret
            )
        response: dict[str, Any] = {
            "app_id": identity.app_id,
            "authed_user": authed_user,
            "team": {"id": identity.team_id, "name": identity.team_name},
            "enterprise": None,
            "is_enterprise_install": False,
        }
        if grant.bot_scopes:
            bot = self._workspace.grant_bot_scopes(grant.bot_scopes)
            response.update(
                scope=",".join(sorted(bot.scopes)),
                token_type="bot",  # noqa: S106 - a token kind, not a secret
                access_token=bot.value,
                bot_user_id=identity.bot_user_id,
            )
        return response


def _error_page(status: int, error: str, detail: str) -> web.Response:
    body = f"<html><body><h1>{html.escape(error)}</h1><p>{html.escape(detail)}</p></body></html>"
    return web.Response(status=status, text=body, content_type="text/html")


class ForeignRedirect(Exception):
    """The flow tried to leave the simulator and the app (for example to the real slack.com)."""


class Browser:
    """A scripted browser: follows redirects and keeps cookies per host, as a person's would."""

    def __init__(self, session: aiohttp.ClientSession, allowed_hosts: set[str]) -> None:
        self._session = session
        self._allowed_hosts = allowed_hosts
        self._cookies: dict[str, dict[str, str]] = {}
        self.steps: list[dict[str, Any]] = []

    def set_cookie(self, url: str, name: str, value: str) -> None:
        self._cookies.setdefault(urlsplit(url).netloc, {})[name] = value

    async def get(self, url: str) -> tuple[int, str, str]:
        """GET `url`, following redirects; returns (status, final url, body)."""
        for _ in range(MAX_REDIRECTS):
            host = urlsplit(url).netloc
            if host not in self._allowed_hosts:
                raise ForeignRedirect(
                    f"the flow went to {_redact(url)}, outside the simulator and the app"
                )
            jar = self._cookies.get(host, {})
            headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}
            async with self._session.get(
                url, headers=headers, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                body = await response.text()
                for header in response.headers.getall("Set-Cookie", []):
                    cookie: SimpleCookie = SimpleCookie()
                    cookie.load(header)
                    for name, morsel in cookie.items():
                        self._cookies.setdefault(host, {})[name] = morsel.value
                self.steps.append({"url": _redact(url), "status": response.status})
                location = response.headers.get("Location")
                if response.status in (301, 302, 303, 307, 308) and location:
                    url = urljoin(url, location)
                    continue
                return response.status, url, body
        raise RuntimeError(f"too many redirects from {_redact(url)}")


def _redact(url: str) -> str:
    """Codes are credentials: the steps log keeps only that one was present."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    if "code" in query:
        query["code"] = ["…"]
    flat = urlencode({key: values[0] for key, values in query.items()})
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{flat}" if flat else "")


def find_authorize_link(page: str, authorize_url: str) -> str | None:
    """The "Add to Slack" link on an install page that renders one instead of redirecting."""
    marker = authorize_url.split("://", 1)[-1]
    for chunk in page.split('href="')[1:]:
        href = html.unescape(chunk.split('"', 1)[0])
        if marker in href:
            return href
    return None


async def run_install_flow(
    session: aiohttp.ClientSession,
    *,
    user_id: str,
    app_url: str,
    sim_url: str,
    authorize_url: str,
    redeemed: Callable[[], int],
) -> InstallOutcome:
    """Install the app as `user_id`: its install page, our authorize page, its redirect page."""
    outcome = InstallOutcome(user_id=user_id)
    install_url = f"{app_url.rstrip('/')}/slack/install"
    browser = Browser(session, {urlsplit(app_url).netloc, urlsplit(sim_url).netloc})
    outcome.steps = browser.steps
    browser.set_cookie(sim_url, LOGIN_COOKIE, user_id)
    redeemed_before = redeemed()
    try:
        status, final_url, page = await browser.get(install_url)
        if status == 200 and urlsplit(final_url).path == urlsplit(install_url).path:
            link = find_authorize_link(page, authorize_url)
            if link is None:
                outcome.error = f"the install page at {install_url} has no link to {authorize_url}"
                return outcome
            status, final_url, page = await browser.get(link)
    except ForeignRedirect as error:
        outcome.error = f"{error}; is the app's authorization_url {authorize_url}?"
        return outcome
    except (aiohttp.ClientError, TimeoutError) as error:
        outcome.error = f"app not reachable at {install_url}: {error!r}"
        return outcome
    if redeemed() == redeemed_before:
        outcome.error = (
            f"the app never exchanged the code (last page: HTTP {status} {_redact(final_url)})"
        )
    elif status >= 400:
        outcome.error = f"the app's redirect page failed: HTTP {status}"
    else:
        outcome.ok = True
    return outcome
