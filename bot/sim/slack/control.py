"""The Slack simulator's control API under /_sim/: drive and inspect it over HTTP, no auth."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from bot.sim.slack.delivery import DEFAULT_RESPONSE_WAIT
from bot.sim.slack.oauth import LOGIN_COOKIE
from bot.sim.slack.state import DEFAULT_USER_SCOPES

if TYPE_CHECKING:
    from bot.sim.slack.server import SlackSimulator

JsonHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ControlError(Exception):
    """A control API request that cannot be served: answered as {"ok": false, "error": ...}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ControlApi:
    """Thin HTTP wrappers over the simulator's Python helpers."""

    def __init__(self, simulator: SlackSimulator) -> None:
        self._sim = simulator

    def routes(self) -> list[web.RouteDef]:
        routes = [
            ("GET", "/_sim/users", self.users),
            ("GET", "/_sim/users/{id}", self.user),
            ("POST", "/_sim/users/{id}/status", self.status),
            ("POST", "/_sim/users/{id}/huddle", self.huddle),
            ("POST", "/_sim/users/{id}/dnd", self.dnd),
            ("GET", "/_sim/snoozes", self.snoozes),
            ("POST", "/_sim/users/{id}/authorize", self.authorize),
            ("POST", "/_sim/users/{id}/token", self.token),
            ("POST", "/_sim/users/{id}/revoke", self.revoke),
            ("POST", "/_sim/commands", self.command),
            ("POST", "/_sim/actions", self.action),
            ("POST", "/_sim/events/app_home_opened", self.home_opened),
            ("POST", "/_sim/events", self.raw_event),
            ("POST", "/_sim/interactions", self.raw_interaction),
            ("GET", "/_sim/messages", self.messages),
            ("GET", "/_sim/views", self.views),
            ("GET", "/_sim/profile_writes", self.profile_writes),
            ("POST", "/_sim/faults", self.faults),
            ("GET", "/_sim/stats", self.stats),
            ("POST", "/_sim/stats/reset", self.stats_reset),
            ("POST", "/_sim/delivery", self.delivery),
            ("POST", "/_sim/socket/refresh", self.socket_refresh),
            ("GET", "/_sim/login", self.login),
            ("GET", "/_sim/info", self.info),
        ]
        return [web.route(verb, path, _json_endpoint(handler)) for verb, path, handler in routes]

    async def users(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {"ok": True, "users": self._sim.users()}

    async def user(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {"ok": True, "user": self._sim.user(request.match_info["id"])}

    async def status(self, request: web.Request, body: dict[str, Any]) -> Any:
        user = self._sim.set_status(
            request.match_info["id"],
            str(body.get("status_text", "")),
            str(body.get("status_emoji", "")),
            int(body.get("status_expiration") or 0),
        )
        return {"ok": True, "user": user}

    async def huddle(self, request: web.Request, body: dict[str, Any]) -> Any:
        in_huddle = body.get("in_huddle")
        if not isinstance(in_huddle, bool):
            raise ControlError(400, "in_huddle must be true or false")
        return {"ok": True, "user": self._sim.set_huddle(request.match_info["id"], in_huddle)}

    async def dnd(self, request: web.Request, body: dict[str, Any]) -> Any:
        minutes = _optional_int(body.get("snooze_minutes"))
        schedule = body.get("schedule")
        window: tuple[int, int] | None = None
        if schedule is not None:
            if (
                not isinstance(schedule, list)
                or len(schedule) != 2
                or not all(isinstance(x, int) for x in schedule)
            ):
                raise ControlError(400, "schedule must be [start, end] in unix seconds")
            window = (schedule[0], schedule[1])
        user = self._sim.set_dnd(request.match_info["id"], snooze_minutes=minutes, schedule=window)
        return {"ok": True, "user": user}

    async def snoozes(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {"ok": True, "calls": self._sim.snooze_calls()}

    async def authorize(self, request: web.Request, body: dict[str, Any]) -> Any:
        outcome = await self._sim.authorize(request.match_info["id"])
        if outcome["ok"]:
            return outcome
        unreachable = str(outcome.get("error", "")).startswith("app not reachable")
        return web.json_response(outcome, status=502 if unreachable else 400)

    async def token(self, request: web.Request, body: dict[str, Any]) -> Any:
        scopes = body.get("scopes") or DEFAULT_USER_SCOPES
        token = self._sim.grant_user_token(request.match_info["id"], [str(s) for s in scopes])
        return {"ok": True, "user_id": request.match_info["id"], "token": token}

    async def revoke(self, request: web.Request, body: dict[str, Any]) -> Any:
        revoked = self._sim.revoke(request.match_info["id"])
        return {"ok": True, "revoked": len(revoked)}

    async def command(self, request: web.Request, body: dict[str, Any]) -> Any:
        outcome = await self._sim.send_command(
            _required(body, "user_id"),
            _required(body, "command"),
            str(body.get("text", "")),
            body.get("channel_id"),
            wait=float(body.get("wait", DEFAULT_RESPONSE_WAIT)),
            expect_responses=_optional_int(body.get("expect_responses")),
        )
        return {"ok": True, **outcome}

    async def action(self, request: web.Request, body: dict[str, Any]) -> Any:
        view = body.get("view")
        if view not in (None, "home"):
            raise ControlError(400, 'view must be "home" or absent')
        outcome = await self._sim.click(
            _required(body, "user_id"),
            _required(body, "action_id"),
            None if body.get("value") is None else str(body["value"]),
            body.get("block_id"),
            "home" if view == "home" else None,
            wait=float(body.get("wait", DEFAULT_RESPONSE_WAIT)),
            expect_responses=_optional_int(body.get("expect_responses")),
        )
        return {"ok": True, **outcome}

    async def home_opened(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {"ok": True, "event_id": self._sim.open_app_home(_required(body, "user_id"))}

    async def raw_event(self, request: web.Request, body: dict[str, Any]) -> Any:
        event = body.get("event")
        if not isinstance(event, dict):
            raise ControlError(400, "event must be an object")
        return {"ok": True, "event_id": self._sim.emit_raw_event(event)}

    async def raw_interaction(self, request: web.Request, body: dict[str, Any]) -> Any:
        kind, payload = body.get("type"), body.get("payload")
        if kind not in ("slash_commands", "interactive") or not isinstance(payload, dict):
            raise ControlError(
                400, 'type must be "slash_commands" or "interactive"; payload an object'
            )
        return {"ok": True, **await self._sim.send_raw_interaction(kind, payload)}

    async def messages(self, request: web.Request, body: dict[str, Any]) -> Any:
        query = request.query
        found = self._sim.messages(query.get("user"), query.get("kind"), query.get("channel"))
        return {"ok": True, "messages": found}

    async def views(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {"ok": True, "views": self._sim.views()}

    async def profile_writes(self, request: web.Request, body: dict[str, Any]) -> Any:
        since = request.query.get("since")
        writes = self._sim.profile_writes(
            request.query.get("user"), float(since) if since else None
        )
        return {"ok": True, "writes": writes}

    async def faults(self, request: web.Request, body: dict[str, Any]) -> Any:
        self._sim.inject_fault(
            _required(body, "method"),
            int(body.get("status", 429)),
            int(body.get("count", 1)),
            float(body.get("retry_after", 1)),
            body.get("error"),
        )
        return {"ok": True}

    async def stats(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {"ok": True, **self._sim.stats()}

    async def stats_reset(self, request: web.Request, body: dict[str, Any]) -> Any:
        self._sim.reset_stats()
        return {"ok": True}

    async def delivery(self, request: web.Request, body: dict[str, Any]) -> Any:
        if "app_url" in body:
            self._sim.app_url = str(body["app_url"])
        self._sim.configure_delivery(
            signing_secret=body.get("signing_secret"),
            timestamp_skew=float(body.get("timestamp_skew", 0.0)),
        )
        return {"ok": True, "app_url": self._sim.app_url}

    async def socket_refresh(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {"ok": True, "refreshed": await self._sim.refresh_sockets()}

    async def login(self, request: web.Request, body: dict[str, Any]) -> Any:
        user_id = self._sim.user(request.query.get("user", ""))["id"]
        response = web.json_response({"ok": True, "user_id": user_id})
        following = request.query.get("next")
        if following and urlsplit(following).netloc in ("", urlsplit(self._sim.url).netloc):
            response = web.Response(status=302, headers={"Location": following})
        response.set_cookie(LOGIN_COOKIE, user_id, path="/", httponly=True)
        return response

    async def info(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {
            "ok": True,
            "team_id": self._sim.team_id,
            "app_id": self._sim.app_id,
            "bot_user_id": self._sim.bot_user_id,
            "api_url": self._sim.api_url,
            "authorize_url": self._sim.authorize_url,
            "app_url": self._sim.app_url,
            "client_id": self._sim.client_id,
            "time_scale": self._sim.time_scale.factor,
        }


def _required(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not value:
        raise ControlError(400, f"missing {name}")
    return str(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _json_endpoint(
    handler: Callable[[web.Request, dict[str, Any]], Awaitable[Any]],
) -> JsonHandler:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        body: dict[str, Any] = {}
        if request.method == "POST" and request.can_read_body:
            try:
                parsed = await request.json()
            except ValueError:
                return web.json_response({"ok": False, "error": "body is not JSON"}, status=400)
            if not isinstance(parsed, dict):
                return web.json_response(
                    {"ok": False, "error": "body must be an object"}, status=400
                )
            body = parsed
        try:
            result = await handler(request, body)
        except ControlError as error:
            return web.json_response({"ok": False, "error": error.message}, status=error.status)
        except (TypeError, ValueError) as error:
            return web.json_response({"ok": False, "error": str(error)}, status=400)
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response(result, dumps=lambda value: json.dumps(value, default=str))

    return endpoint
