"""The simulated Web API under /api/: arguments, tokens, scopes, rate limits, faults, methods."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.sim.limits import SlidingWindow, TimeScale
from bot.sim.slack.oauth import OAuth
from bot.sim.slack.state import (
    ROLE_RANK,
    STATUS_TEXT_LIMIT,
    ApiError,
    Message,
    RateLimited,
    SimUser,
    Token,
    TokenKind,
    Workspace,
    valid_emoji,
)

DEFAULT_TIER_LIMITS: Mapping[int, int] = {2: 20, 3: 50, 4: 100}
CHANNEL_POST_BURST = 3
PROFILE_FIELDS = ("display_name", "real_name", "first_name", "last_name", "title", "phone")
STATUS_FIELDS = ("status_text", "status_emoji", "status_expiration")
USERS_LIST_MAX_PAGE = 1000
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
# Slack documents `too_long` for a num_minutes "too large" without the bound; a day is the
# strictest reading that still allows the bot's renewals.
SNOOZE_MAX_MINUTES = 1440

Handler = Callable[["ApiCall", "Token | None"], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ApiCall:
    method: str
    args: dict[str, Any]
    bearer: str | None
    param_token: str | None
    basic: tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class MethodSpec:
    handler: Handler
    tier: int | None
    token_kinds: frozenset[TokenKind]
    scopes: tuple[str, ...] = ()
    header_token_only: bool = False


@dataclass(slots=True)
class Fault:
    status: int
    remaining: int
    retry_after: float
    error: str | None


class DistinctWindow:
    """At most `limit` distinct keys touched in any `window` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        self._limit = limit
        self._window = window
        self._last_seen: OrderedDict[str, float] = OrderedDict()

    def try_acquire(self, key: str) -> float | None:
        now = time.monotonic()
        while self._last_seen:
            oldest_key, oldest = next(iter(self._last_seen.items()))
            if oldest > now - self._window:
                break
            del self._last_seen[oldest_key]
        if key in self._last_seen:
            self._last_seen.move_to_end(key)
            self._last_seen[key] = now
            return None
        if len(self._last_seen) >= self._limit:
            return next(iter(self._last_seen.values())) + self._window - now
        self._last_seen[key] = now
        return None


class RateLimits:
    """Slack's limits: per method per workspace, per channel for posts, per profile and token."""

    def __init__(
        self,
        time_scale: TimeScale,
        tier_limits: Mapping[int, int],
        profile_writes_per_profile: int,
        profiles_per_token: int,
    ) -> None:
        self._minute = time_scale.seconds(60.0)
        self._second = time_scale.seconds(1.0)
        self._tiers = dict(tier_limits)
        self._per_profile = profile_writes_per_profile
        self._profiles_per_token = profiles_per_token
        self._methods: dict[str, SlidingWindow] = {}
        self._channels: dict[str, SlidingWindow] = {}
        self._profiles: dict[tuple[str, str], SlidingWindow] = {}
        self._tokens: dict[str, DistinctWindow] = {}

    def method(self, method: str, tier: int) -> None:
        window = self._methods.get(method)
        if window is None:
            window = self._methods[method] = SlidingWindow(self._tiers[tier], self._minute)
        _acquire(window)

    def channel_post(self, channel: str) -> None:
        window = self._channels.get(channel)
        if window is None:
            window = SlidingWindow(CHANNEL_POST_BURST, CHANNEL_POST_BURST * self._second)
            self._channels[channel] = window
        _acquire(window)

    def profile_write(self, token: str, user_id: str) -> None:
        key = (token, user_id)
        window = self._profiles.get(key)
        if window is None:
            window = self._profiles[key] = SlidingWindow(self._per_profile, self._minute)
        distinct = self._tokens.get(token)
        if distinct is None:
            distinct = self._tokens[token] = DistinctWindow(self._profiles_per_token, self._minute)
        wait = distinct.try_acquire(user_id)
        if wait is not None:
            raise RateLimited(wait)
        _acquire(window)


def _acquire(window: SlidingWindow) -> None:
    wait = window.try_acquire()
    if wait is not None:
        raise RateLimited(wait)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _json_arg(value: Any, error: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ApiError(error) from exc
    return value


class WebApi:
    """Answers /api/{method} the way Slack does, for the methods this bot uses."""

    def __init__(
        self,
        workspace: Workspace,
        oauth: OAuth,
        limits: RateLimits,
        *,
        on_status_changed: Callable[[SimUser], None],
        socket_url: Callable[[], str],
        on_dnd_changed: Callable[[SimUser], None] | None = None,
    ) -> None:
        self._on_dnd_changed = on_dnd_changed
        self._workspace = workspace
        self._identity = workspace.identity
        self._oauth = oauth
        self._limits = limits
        self._on_status_changed = on_status_changed
        self._socket_url = socket_url
        self._faults: dict[str, deque[Fault]] = {}
        bot_user: frozenset[TokenKind] = frozenset({"bot", "user"})
        self._methods: dict[str, MethodSpec] = {
            "api.test": MethodSpec(self._api_test, None, frozenset()),
            "auth.test": MethodSpec(self._auth_test, None, bot_user),
            "users.info": MethodSpec(self._users_info, 4, bot_user, ("users:read",)),
            "users.list": MethodSpec(self._users_list, 2, bot_user, ("users:read",)),
            "users.lookupByEmail": MethodSpec(
                self._users_lookup_by_email, 3, bot_user, ("users:read.email",)
            ),
            "users.profile.get": MethodSpec(
                self._users_profile_get, 4, bot_user, ("users.profile:read",)
            ),
            "users.profile.set": MethodSpec(
                self._users_profile_set, 3, frozenset({"user"}), ("users.profile:write",)
            ),
            "chat.postMessage": MethodSpec(
                self._chat_post_message, 4, bot_user, ("chat:write", "chat:write:bot")
            ),
            "conversations.open": MethodSpec(
                self._conversations_open,
                3,
                bot_user,
                ("im:write", "mpim:write", "channels:manage", "groups:write"),
            ),
            "views.publish": MethodSpec(self._views_publish, 4, frozenset({"bot"})),
            # reference/slack.md §3.4 and §5.1: dnd.info takes bot or user tokens (Tier 3);
            # setSnooze and endSnooze act on the token's own user, so user tokens only (Tier 2).
            "dnd.info": MethodSpec(self._dnd_info, 3, bot_user, ("dnd:read",)),
            "dnd.setSnooze": MethodSpec(
                self._dnd_set_snooze, 2, frozenset({"user"}), ("dnd:write",)
            ),
            "dnd.endSnooze": MethodSpec(
                self._dnd_end_snooze, 2, frozenset({"user"}), ("dnd:write",)
            ),
            "oauth.v2.access": MethodSpec(self._oauth_v2_access, 4, frozenset()),
            "apps.connections.open": MethodSpec(
                self._apps_connections_open,
                3,
                frozenset({"app"}),
                ("connections:write",),
                header_token_only=True,
            ),
        }

    # -- faults -----------------------------------------------------------------------------

    def inject_fault(
        self,
        method: str,
        status: int,
        count: int = 1,
        retry_after: float = 1.0,
        error: str | None = None,
    ) -> None:
        """The next `count` calls of `method` fail with `status` (429, 5xx, or 200 with `error`),
        after the faults already queued for it; a `count` of 0 clears them all."""
        if count <= 0:
            self._faults.pop(method, None)
            return
        self._faults.setdefault(method, deque()).append(Fault(status, count, retry_after, error))

    def _take_fault(self, method: str) -> Fault | None:
        queued = self._faults.get(method)
        if not queued:
            return None
        fault = queued[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queued.popleft()
            if not queued:
                del self._faults[method]
        return fault

    # -- the HTTP entry point ---------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        stats = self._workspace.stats
        stats.calls[method] += 1
        headers: dict[str, str] = {}
        try:
            spec = self._methods.get(method)
            if spec is None:
                raise ApiError("unknown_method")
            call = await _parse_call(request, method)
            fault = self._take_fault(method)
            if fault is not None:
                return self._fault_response(method, fault)
            token = self._authenticate(call, spec)
            if token is not None:
                headers["X-OAuth-Scopes"] = ",".join(sorted(token.scopes))
                headers["X-Accepted-OAuth-Scopes"] = ",".join(spec.scopes)
            if spec.tier is not None:
                self._limits.method(method, spec.tier)
            result = spec.handler(call, token)
        except ApiError as error:
            stats.errors[f"{method}:{error.error}"] += 1
            body = {"ok": False, "error": error.error, **error.extra}
            return web.json_response(body, headers=headers)
        except RateLimited as limited:
            stats.rate_limited[method] += 1
            headers["Retry-After"] = TimeScale.retry_after_header(limited.wait)
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers=headers
            )
        return web.json_response({"ok": True, **result}, headers=headers)

    def _fault_response(self, method: str, fault: Fault) -> web.Response:
        stats = self._workspace.stats
        if fault.status == 429:
            stats.rate_limited[method] += 1
            return web.json_response(
                {"ok": False, "error": fault.error or "ratelimited"},
                status=429,
                headers={"Retry-After": TimeScale.retry_after_header(fault.retry_after)},
            )
        default = {200: "fatal_error", 503: "service_unavailable"}.get(
            fault.status, "internal_error"
        )
        error = fault.error or default
        stats.errors[f"{method}:{error}"] += 1
        return web.json_response({"ok": False, "error": error}, status=fault.status)

    def _authenticate(self, call: ApiCall, spec: MethodSpec) -> Token | None:
        if not spec.token_kinds:
            return None
        value = call.bearer if spec.header_token_only else (call.bearer or call.param_token)
        if not value:
            raise ApiError("not_authed")
        token = self._workspace.tokens.get(value)
        if token is None:
            raise ApiError("invalid_auth")
        if token.revoked:
            raise ApiError("token_revoked")
        if token.kind not in spec.token_kinds:
            raise ApiError("not_allowed_token_type")
        if spec.scopes and not token.scopes.intersection(spec.scopes):
            raise ApiError(
                "missing_scope", needed=spec.scopes[0], provided=",".join(sorted(token.scopes))
            )
        return token

    # -- methods ----------------------------------------------------------------------------

    def _api_test(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        return {"args": {k: v for k, v in call.args.items() if k != "token"}}

    def _auth_test(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        assert token is not None
        assert token.user_id is not None
        user = self._workspace.users[token.user_id]
        result: dict[str, Any] = {
            "url": f"https://{self._identity.team_domain}.slack.com/",
            "team": self._identity.team_name,
            "user": user.name,
            "team_id": self._identity.team_id,
            "user_id": user.id,
            "is_enterprise_install": False,
        }
        if token.kind == "bot":
            result["bot_id"] = self._identity.bot_id
        return result

    def _user_arg(self, call: ApiCall, name: str = "user") -> SimUser:
        user_id = call.args.get(name)
        if not user_id:
            raise ApiError("invalid_arguments", response_metadata={"messages": [f"missing {name}"]})
        user = self._workspace.user(str(user_id))
        if user is None:
            raise ApiError("user_not_found")
        return user

    def _users_info(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        assert token is not None
        user = self._user_arg(call)
        with_email = "users:read.email" in token.scopes
        return {"user": self._workspace.user_json(user, with_email=with_email, now=time.time())}

    def _users_list(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        assert token is not None
        order = self._workspace.member_order
        try:
            limit = int(call.args.get("limit") or 0)
        except ValueError as exc:
            raise ApiError("invalid_limit") from exc
        limit = USERS_LIST_MAX_PAGE if limit <= 0 else min(limit, USERS_LIST_MAX_PAGE)
        offset = _decode_cursor(str(call.args.get("cursor") or ""), len(order))
        page = order[offset : offset + limit]
        now = time.time()
        with_email = "users:read.email" in token.scopes
        members = [
            self._workspace.user_json(self._workspace.users[uid], with_email=with_email, now=now)
            for uid in page
        ]
        following = offset + len(page)
        next_cursor = _encode_cursor(following) if following < len(order) else ""
        return {
            "members": members,
            "cache_ts": int(now),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _users_lookup_by_email(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        email = str(call.args.get("email") or "")
        if not email:
            raise ApiError("invalid_arguments", response_metadata={"messages": ["missing email"]})
        user = self._workspace.by_email(email)
        if user is None:
            raise ApiError("users_not_found")
        return {"user": self._workspace.user_json(user, with_email=True, now=time.time())}

    def _users_profile_get(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        assert token is not None
        assert token.user_id is not None
        user = self._workspace.users[token.user_id]
        if call.args.get("user"):
            user = self._user_arg(call)
        with_email = "users:read.email" in token.scopes or token.user_id == user.id
        return {
            "profile": self._workspace.profile_json(user, with_email=with_email, now=time.time())
        }

    def _users_profile_set(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        assert token is not None
        assert token.user_id is not None
        actor = self._workspace.users[token.user_id]
        target = actor
        if call.args.get("user") and call.args["user"] != actor.id:
            target = self._user_arg(call)
            if ROLE_RANK[actor.role] < ROLE_RANK["admin"]:
                raise ApiError("not_admin")
            if target.is_bot or ROLE_RANK[target.role] >= ROLE_RANK[actor.role]:
                raise ApiError("cannot_update_admin_user")
        changes = _profile_changes(call.args)
        self._limits.profile_write(token.value, target.id)
        now = time.time()
        before = target.status(now)
        _apply_profile(target, changes)
        after = target.status(now)
        target.updated = int(now)
        if any(name in changes for name in STATUS_FIELDS):
            self._workspace.profile_writes.append(
                {
                    "user": target.id,
                    "text": target.status_text,
                    "emoji": target.status_emoji,
                    "expiration": target.status_expiration,
                    "at": now,
                    "by": actor.id,
                }
            )
        if after != before:
            self._on_status_changed(target)
        return {
            "username": target.name,
            "profile": self._workspace.profile_json(target, with_email=True, now=now),
        }

    def _dnd_info(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        assert token is not None
        assert token.user_id is not None
        user = self._user_arg(call) if call.args.get("user") else None
        if user is None:
            user = self._workspace.users[token.user_id]
        own = token.kind == "user" and token.user_id == user.id
        return user.dnd_json(time.time(), own=own)

    def _dnd_set_snooze(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        assert token is not None
        assert token.user_id is not None
        user = self._workspace.users[token.user_id]
        raw = call.args.get("num_minutes")
        if raw is None or str(raw).strip() == "":
            raise ApiError("missing_duration")
        try:
            minutes = int(str(raw))
        except ValueError as exc:
            raise ApiError("invalid_arguments") from exc
        if minutes < 1:
            raise ApiError("invalid_arguments")
        if minutes > SNOOZE_MAX_MINUTES:
            raise ApiError("too_long")
        now = time.time()
        user.snooze_endtime = int(now) + minutes * 60
        self._workspace.snooze_calls.append(
            {"user": user.id, "method": "dnd.setSnooze", "minutes": minutes, "at": now}
        )
        if self._on_dnd_changed is not None:
            self._on_dnd_changed(user)
        return {
            "snooze_enabled": True,
            "snooze_endtime": user.snooze_endtime,
            "snooze_remaining": minutes * 60,
            "snooze_is_indefinite": False,
        }

    def _dnd_end_snooze(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        assert token is not None
        assert token.user_id is not None
        user = self._workspace.users[token.user_id]
        now = time.time()
        if not user.snoozed(now):
            raise ApiError("snooze_not_active")
        user.snooze_endtime = 0
        self._workspace.snooze_calls.append({"user": user.id, "method": "dnd.endSnooze", "at": now})
        if self._on_dnd_changed is not None:
            self._on_dnd_changed(user)
        found = user.dnd_json(now, own=True)
        found.pop("snooze_endtime", None)
        found.pop("snooze_remaining", None)
        found.pop("snooze_is_indefinite", None)
        return found

    def _chat_post_message(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        channel = str(call.args.get("channel") or "")
        workspace = self._workspace
        recipient: str | None = None
        if channel.startswith(("U", "W")):
            user = workspace.user(channel)
            if user is None or user.is_bot:
                raise ApiError("channel_not_found")
            recipient, channel = user.id, workspace.dm_channel(user.id)
        elif channel.startswith("D"):
            recipient = workspace.dm_user(channel)
            if recipient is None:
                raise ApiError("channel_not_found")
        elif channel == self._identity.general_channel_id:
            # The bot was never invited to #general; posting there fails as it would in Slack.
            raise ApiError("not_in_channel")
        else:
            raise ApiError("channel_not_found")
        text = str(call.args.get("text") or "")
        blocks = _json_arg(call.args.get("blocks") or [], "invalid_blocks")
        if not isinstance(blocks, list) or len(blocks) > MAX_MESSAGE_BLOCKS:
            raise ApiError("invalid_blocks")
        if not text and not blocks and not call.args.get("attachments"):
            raise ApiError("no_text")
        if len(text) > 40_000:
            raise ApiError("msg_too_long")
        self._limits.channel_post(channel)
        ts = workspace.next_ts()
        thread_ts = call.args.get("thread_ts")
        workspace.record_message(
            Message(
                kind="dm",
                channel=channel,
                user=recipient,
                text=text,
                blocks=blocks,
                ts=ts,
                extra={"from": token.user_id if token else None, "thread_ts": thread_ts},
            )
        )
        message = {
            "type": "message",
            "user": token.user_id if token else None,
            "bot_id": self._identity.bot_id if token and token.kind == "bot" else None,
            "app_id": self._identity.app_id,
            "text": text,
            "blocks": blocks,
            "ts": ts,
            "team": self._identity.team_id,
        }
        return {"channel": channel, "ts": ts, "message": message}

    def _conversations_open(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        raw = str(call.args.get("users") or "")
        user_ids = [u.strip() for u in raw.split(",") if u.strip()]
        if not user_ids:
            raise ApiError("users_list_not_supplied")
        if len(user_ids) > 8:
            raise ApiError("too_many_users")
        if len(user_ids) > 1:
            raise ApiError("not_supported", detail="the simulator only opens 1:1 DMs")
        user = self._workspace.user(user_ids[0])
        if user is None:
            raise ApiError("user_not_found")
        if user.is_bot:
            raise ApiError("cannot_dm_bot")
        channel, already_open = self._workspace.open_dm(user.id)
        if _truthy(call.args.get("return_im")):
            body: dict[str, Any] = {
                "id": channel,
                "is_im": True,
                "user": user.id,
                "created": int(time.time()),
                "is_open": True,
            }
        else:
            body = {"id": channel}
        result: dict[str, Any] = {"channel": body}
        if already_open:
            result.update(no_op=True, already_open=True)
        return result

    def _views_publish(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        user = self._user_arg(call, "user_id")
        view = _json_arg(call.args.get("view"), "invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "home":
            raise ApiError(
                "invalid_arguments", response_metadata={"messages": ["view.type must be home"]}
            )
        blocks = view.get("blocks", [])
        if not isinstance(blocks, list) or len(blocks) > MAX_VIEW_BLOCKS:
            raise ApiError("invalid_blocks")
        expected_hash = call.args.get("hash")
        current = self._workspace.views.get(user.id)
        if expected_hash and (current is None or current["hash"] != expected_hash):
            raise ApiError("hash_conflict")
        return {"view": self._workspace.publish_view(user.id, view)}

    def _oauth_v2_access(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        return self._oauth.redeem(call.args, call.basic)

    def _apps_connections_open(self, call: ApiCall, token: Token | None) -> dict[str, Any]:
        return {"url": self._socket_url()}


def _profile_changes(args: dict[str, Any]) -> dict[str, Any]:
    """Validated profile fields from `profile` or `name`+`value`, with Slack's error names."""
    if args.get("profile") not in (None, ""):
        profile = _json_arg(args["profile"], "invalid_profile")
        if not isinstance(profile, dict):
            raise ApiError("invalid_profile")
    elif args.get("name"):
        profile = {str(args["name"]): args.get("value", "")}
    else:
        raise ApiError("invalid_profile")
    changes: dict[str, Any] = {}
    for name in PROFILE_FIELDS:
        if name in profile:
            changes[name] = str(profile[name] or "")
    text = profile.get("status_text")
    emoji = profile.get("status_emoji")
    if text is not None:
        text = str(text)
        if len(text) > STATUS_TEXT_LIMIT:
            raise ApiError("too_long", field="status_text")
        changes["status_text"] = text
    if emoji is not None:
        emoji = str(emoji)
        if emoji and not valid_emoji(emoji):
            raise ApiError("invalid_emoji_not_allowed")
        changes["status_emoji"] = emoji
    # An empty status_text or status_emoji sent without the other key is refused; sent together,
    # any pair is accepted (that is how an emoji-only status is set).
    if (text == "" and emoji is None) or (emoji == "" and text is None):
        raise ApiError("must_clear_both_status_text_and_status_emoji")
    if "status_expiration" in profile:
        try:
            expiration = int(profile["status_expiration"] or 0)
        except (TypeError, ValueError) as exc:
            raise ApiError("invalid_profile") from exc
        if expiration < 0:
            raise ApiError("invalid_profile")
        changes["status_expiration"] = expiration
    if text == "" and emoji == "":
        changes["status_expiration"] = 0
    return changes


def _apply_profile(user: SimUser, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        setattr(user, name, value)


def _encode_cursor(offset: int) -> str:
    return base64.b64encode(f"user:{offset}".encode()).decode()


def _decode_cursor(cursor: str, size: int) -> int:
    if not cursor:
        return 0
    try:
        kind, _, number = base64.b64decode(cursor, validate=True).decode().partition(":")
        offset = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiError("invalid_cursor") from exc
    if kind != "user" or not 0 <= offset <= size:
        raise ApiError("invalid_cursor")
    return offset


async def _parse_call(request: web.Request, method: str) -> ApiCall:
    """Merge query string, form and JSON arguments, and find the credentials the way Slack does."""
    args: dict[str, Any] = dict(request.query)
    param_token = request.query.get("token")
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError as exc:
                raise ApiError("invalid_json") from exc
            if not isinstance(body, dict):
                raise ApiError("invalid_json")
            # Slack ignores a token inside a JSON body: JSON callers must use the header.
            body.pop("token", None)
            args.update(body)
        else:
            form = await request.post()
            for key in form:
                args[key] = str(form[key])
            if "token" in form:
                param_token = str(form["token"])
    bearer: str | None = None
    basic: tuple[str, str] | None = None
    authorization = request.headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        bearer = credentials.strip()
    elif scheme.lower() == "basic" and credentials.strip():
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ApiError("invalid_auth") from exc
        client_id, _, secret = decoded.partition(":")
        basic = (client_id, secret)
    args.pop("token", None)
    return ApiCall(method=method, args=args, bearer=bearer, param_token=param_token, basic=basic)
