"""The RingCentral simulator's REST API: OAuth endpoints, extensions and presence, with paging."""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from bot.sim.ringcentral.auth import JWT_GRANT, AuthFailure, AuthService, OAuthSession
from bot.sim.ringcentral.directory import (
    BASE,
    EXTENSION_STATUSES,
    EXTENSION_TYPES,
    Directory,
    DirectoryError,
    Extension,
    PresenceChange,
)
from bot.sim.ringcentral.wire import (
    FaultBook,
    Group,
    RateLimiter,
    Stats,
    dumps,
    error_body,
    insufficient_permissions_body,
    oauth_error_body,
    rate_limited_body,
)

MAX_PER_PAGE: Final = 1000
DEFAULT_PER_PAGE: Final = 100
MAX_BULK_PRESENCE: Final = 30
# PresenceInfoRequest (ringcentral-extensible definitions): what PUT presence may change.
USER_SETTABLE_PRESENCE: Final = frozenset(
    {
        "userStatus",
        "dndStatus",
        "dndStatusPersonal",
        "message",
        "allowSeeMyPresence",
        "ringOnMonitoredCall",
        "pickUpCallsOnHold",
    }
)
_PAGING_KEYS: Final = frozenset({"page", "perPage"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RestError(Exception):
    """An error answer in RingCentral's shape, raised from deep inside a handler."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body
        self.headers = headers or {}


def json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    text = body if isinstance(body, str) else dumps(body)
    response = web.Response(text=text, status=status, headers=headers or {})
    response.content_type = "application/json"
    response.charset = "utf-8"
    return response


def _invalid_parameter(name: str) -> RestError:
    return RestError(
        400, error_body("CMN-101", f"Parameter [{name}] value is invalid", parameter=name)
    )


def _not_found(name: str) -> RestError:
    return RestError(
        404, error_body("CMN-102", f"Resource for parameter [{name}] is not found", parameter=name)
    )


def _multi(request: web.Request, name: str, allowed: frozenset[str]) -> frozenset[str] | None:
    """A multi-valued filter given as repeated parameters, comma-separated lists, or both."""
    raw = request.query.getall(name, [])
    if not raw:
        return None
    values = frozenset(v.strip() for item in raw for v in item.split(",") if v.strip())
    if not values or not values <= allowed:
        raise _invalid_parameter(name)
    return values


def _flag(request: web.Request, name: str) -> bool:
    # The Python SDK sends Python booleans unencoded ("True"), so compare case-insensitively.
    return request.query.get(name, "false").lower() == "true"


class RestApi:
    """aiohttp handlers for every REST endpoint the simulator serves."""

    def __init__(
        self,
        *,
        directory: Directory,
        auth: AuthService,
        limiter: RateLimiter,
        faults: FaultBook,
        stats: Stats,
        ws_path: str,
        publish: Callable[[PresenceChange], None] | None = None,
    ) -> None:
        self._publish = publish
        self._directory = directory
        self._auth = auth
        self._limiter = limiter
        self._faults = faults
        self._stats = stats
        self._ws_path = ws_path

    def routes(self) -> list[web.RouteDef]:
        account = "/restapi/v1.0/account/{account}"
        return [
            web.post("/restapi/oauth/token", self._wrap(self.token)),
            web.post("/restapi/oauth/revoke", self._wrap(self.revoke)),
            web.post("/restapi/oauth/wstoken", self._wrap(self.ws_token)),
            web.get(f"{account}/extension", self._wrap(self.list_extensions)),
            web.get(f"{account}/extension/{{extension}}", self._wrap(self.get_extension)),
            web.get(f"{account}/extension/{{extension}}/presence", self._wrap(self.get_presence)),
            web.put(
                f"{account}/extension/{{extension}}/presence", self._wrap(self.update_presence)
            ),
            web.get(f"{account}/presence", self._wrap(self.account_presence)),
        ]

    def fallback_route(self) -> web.RouteDef:
        return web.route("*", "/{tail:.*}", self._wrap(self.unknown))

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Counts every API request and serves injected faults before the real handler runs."""
        if request.path.startswith("/_sim/"):
            return await handler(request)
        self._stats.count_request(request.method, request.path)
        fault = self._faults.take(request.method, request.path)
        if fault is not None:
            self._stats.faults += 1
            return json_response(fault.body, status=fault.status, headers=fault.headers)
        return await handler(request)

    @staticmethod
    def _wrap(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except RestError as error:
                return json_response(error.body, status=error.status, headers=error.headers)

        return wrapped

    # ---- shared checks -------------------------------------------------------------------------

    def _bearer(self, request: web.Request) -> OAuthSession:
        result = self._auth.authenticate(request.headers.get("Authorization"))
        if isinstance(result, AuthFailure):
            body = {
                "errorCode": "TokenInvalid",
                "message": result.message,
                "errors": [{"errorCode": result.code, "message": result.message}],
            }
            raise RestError(result.status, body)
        return result

    def _require(self, *permissions: str) -> None:
        """Refuse a call the app's permissions do not cover (stricter reading: before counting)."""
        missing = self._auth.lacking(*permissions)
        if missing is not None:
            raise RestError(403, insufficient_permissions_body(missing))

    def _admit(self, group: Group) -> dict[str, str]:
        admission = self._limiter.admit(group)
        self._stats.count_admission(admission)
        if not admission.allowed:
            raise RestError(429, rate_limited_body(), admission.headers)
        return admission.headers

    def _account(self, request: web.Request) -> None:
        if request.match_info["account"] not in ("~", str(self._directory.account_id)):
            raise _not_found("accountId")

    def _extension_id(self, segment: str) -> int:
        if segment == "~":
            return self._directory.owner_id
        if not segment.isdigit():
            raise _not_found("extensionId")
        return int(segment)

    @staticmethod
    def _origin(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    @staticmethod
    def _oauth_failure(failure: AuthFailure, headers: dict[str, str]) -> RestError:
        return RestError(
            failure.status,
            oauth_error_body(
                failure.oauth_error or "invalid_request", failure.code, failure.message
            ),
            headers,
        )

    # ---- OAuth ---------------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.StreamResponse:
        headers = self._admit("auth")
        failure = self._auth.check_client(request.headers.get("Authorization"))
        if failure is not None:
            raise self._oauth_failure(failure, headers)
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        grant_type = form.get("grant_type", "")
        if grant_type == JWT_GRANT:
            result = self._auth.login_jwt(form.get("assertion", ""), form)
        elif grant_type == "refresh_token":
            result = self._auth.refresh(form.get("refresh_token", ""), form)
        elif grant_type in ("password", "authorization_code", "client_credentials"):
            result = AuthFailure(
                400,
                "OAU-112",
                f"The client is unauthorized for the required grant type: [{grant_type}]",
                "unauthorized_client",
            )
        else:
            result = AuthFailure(
                400, "CMN-101", "Parameter [grant_type] value is invalid", "unsupported_grant_type"
            )
        if isinstance(result, AuthFailure):
            raise self._oauth_failure(result, headers)
        if grant_type == JWT_GRANT:
            self._stats.logins += 1
        else:
            self._stats.refreshes += 1
        return json_response(result.body, headers=headers)

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        headers = self._admit("auth")
        failure = self._auth.check_client(request.headers.get("Authorization"))
        if failure is not None:
            raise self._oauth_failure(failure, headers)
        form = await request.post()
        token = form.get("token")
        if isinstance(token, str):
            self._auth.revoke(token)
        return web.Response(status=200, headers=headers)

    async def ws_token(self, request: web.Request) -> web.StreamResponse:
        session = self._bearer(request)
        self._require("SubscriptionWebSocket")
        headers = self._admit("auth")
        issued = self._auth.issue_ws_token(session)
        scheme = "wss" if request.scheme == "https" else "ws"
        body = {
            "ws_access_token": issued["ws_access_token"],
            "uri": f"{scheme}://{request.host}{self._ws_path}",
            "expires_in": issued["expires_in"],
        }
        self._stats.ws_tokens += 1
        return json_response(body, headers=headers)

    # ---- extensions ----------------------------------------------------------------------------

    async def list_extensions(self, request: web.Request) -> web.StreamResponse:
        self._bearer(request)
        self._require("ReadAccounts")
        self._account(request)
        headers = self._admit("medium")
        types = _multi(request, "type", EXTENSION_TYPES)
        statuses = _multi(request, "status", EXTENSION_STATUSES)
        numbers = request.query.getall("extensionNumber", [])
        emails = request.query.getall("email", [])
        ids = self._directory.query(
            types=types,
            statuses=statuses,
            numbers=frozenset(numbers) if numbers else None,
            emails=frozenset(emails) if emails else None,
        )
        path = f"/restapi/v1.0/account/{self._directory.account_id}/extension"
        text = self._page(request, ids, path, lambda e: self._directory.record_json(e))
        return json_response(text, headers=headers)

    async def get_extension(self, request: web.Request) -> web.StreamResponse:
        self._bearer(request)
        self._require("ReadAccounts")
        self._account(request)
        headers = self._admit("light")
        extension = self._directory.get(self._extension_id(request.match_info["extension"]))
        if extension is None:
            raise _not_found("extensionId")
        text = self._directory.record_json(extension).replace(BASE, self._origin(request))
        return json_response(text, headers=headers)

    # ---- presence ------------------------------------------------------------------------------

    async def get_presence(self, request: web.Request) -> web.StreamResponse:
        self._bearer(request)
        self._require("ReadPresence")
        self._account(request)
        headers = self._admit("light")
        detailed = _flag(request, "detailedTelephonyState")
        segment = request.match_info["extension"]
        if "," in segment:
            return self._bulk_presence(request, segment.split(","), detailed, headers)
        extension = self._directory.get(self._extension_id(segment))
        if extension is None:
            raise _not_found("extensionId")
        text = self._directory.presence_json(extension, detailed=detailed)
        return json_response(text.replace(BASE, self._origin(request)), headers=headers)

    async def update_presence(self, request: web.Request) -> web.StreamResponse:
        """PUT presence (reference: docs/controls.md): Medium group, EditPresence; the fields a
        user sets by hand, answered with the presence after the change."""
        self._bearer(request)
        self._require("EditPresence")
        self._account(request)
        headers = self._admit("medium")
        extension = self._directory.get(self._extension_id(request.match_info["extension"]))
        if extension is None:
            raise _not_found("extensionId")
        if not extension.has_presence:
            raise RestError(
                400,
                error_body("CMN-101", "Presence can be set for User extensions only"),
                headers,
            )
        try:
            body = await request.json()
        except ValueError:
            raise RestError(400, error_body("CMN-101", "Request body is not valid JSON")) from None
        if not isinstance(body, dict):
            raise RestError(400, error_body("CMN-101", "Request body is not a JSON object"))
        fields: dict[str, Any] = {}
        for name, value in body.items():
            if name == "activeCalls":
                continue  # in the request schema, but calls are the phone's to report
            if name not in USER_SETTABLE_PRESENCE:
                raise _invalid_parameter(name)
            fields[name] = value
        try:
            change = self._directory.set_presence(extension.extension_id, fields)
        except DirectoryError:
            raise _invalid_parameter(next(iter(fields), "body")) from None
        if change is not None and self._publish is not None:
            self._publish(change)
        text = self._directory.presence_json(extension, detailed=False)
        return json_response(text.replace(BASE, self._origin(request)), headers=headers)

    def _bulk_presence(
        self, request: web.Request, segments: list[str], detailed: bool, headers: dict[str, str]
    ) -> web.StreamResponse:
        if len(segments) > MAX_BULK_PRESENCE:
            raise RestError(
                400,
                error_body(
                    "InvalidMultipartRequest",
                    "Extension Presence Info multipart request is limited to 30 extensions",
                ),
                headers,
            )
        origin = self._origin(request)
        statuses: list[dict[str, Any]] = []
        parts: list[str] = []
        account_uri = f"{origin}/restapi/v1.0/account/{self._directory.account_id}"
        for segment in segments:
            href = f"{account_uri}/extension/{segment}/presence"
            extension = self._directory.get(int(segment)) if segment.isdigit() else None
            if extension is None:
                statuses.append({"href": href, "status": 404, "responseDescription": "Not Found"})
                parts.append(dumps(_not_found("extensionId").body))
                continue
            statuses.append({"href": href, "status": 200, "responseDescription": "OK"})
            parts.append(
                self._directory.presence_json(extension, detailed=detailed).replace(BASE, origin)
            )
        boundary = f"Boundary_{secrets.token_hex(8)}"
        chunks = [dumps({"response": statuses}), *parts]
        text = "".join(
            f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{chunk}\r\n" for chunk in chunks
        )
        text += f"--{boundary}--\r\n"
        response = web.Response(text=text, status=207, headers=headers)
        response.content_type = f"multipart/mixed; boundary={boundary}"
        return response

    async def account_presence(self, request: web.Request) -> web.StreamResponse:
        self._bearer(request)
        self._require("ReadPresence")
        self._account(request)
        headers = self._admit("heavy")
        detailed = _flag(request, "detailedTelephonyState")
        path = f"/restapi/v1.0/account/{self._directory.account_id}/presence"
        text = self._page(
            request,
            self._directory.all_ids(),
            path,
            lambda e: self._directory.presence_json(e, detailed=detailed),
        )
        return json_response(text, headers=headers)

    async def unknown(self, request: web.Request) -> web.StreamResponse:
        raise RestError(404, error_body("CMN-120", "Invalid URI"))

    # ---- paging --------------------------------------------------------------------------------

    def _page(
        self,
        request: web.Request,
        ids: Sequence[int],
        path: str,
        render: Callable[[Extension], str],
    ) -> str:
        """One page as JSON text; the work is proportional to the page, not to the account."""
        page = self._positive_int(request.query.get("page", "1"), "page")
        per_page_raw = request.query.get("perPage", str(DEFAULT_PER_PAGE))
        if per_page_raw == "max":
            per_page = MAX_PER_PAGE
        else:
            per_page = min(self._positive_int(per_page_raw, "perPage"), MAX_PER_PAGE)
        total = len(ids)
        start = (page - 1) * per_page
        chunk = ids[start : start + per_page]
        total_pages = math.ceil(total / per_page)
        paging: dict[str, int] = {"page": page, "totalPages": total_pages, "perPage": per_page}
        paging["totalElements"] = total
        if chunk:
            paging["pageStart"] = start
            paging["pageEnd"] = start + len(chunk) - 1
        kept = [(k, v) for k, v in request.query.items() if k not in _PAGING_KEYS]

        def uri(number: int) -> str:
            query = urlencode([*kept, ("page", number), ("perPage", per_page)], safe="~,")
            return f"{BASE}{path}?{query}"

        navigation: dict[str, dict[str, str]] = {"firstPage": {"uri": uri(1)}}
        if page < total_pages:
            navigation["nextPage"] = {"uri": uri(page + 1)}
        if page > 1:
            navigation["previousPage"] = {"uri": uri(page - 1)}
        navigation["lastPage"] = {"uri": uri(max(total_pages, 1))}
        records = ",".join(render(self._directory.require(ext_id)) for ext_id in chunk)
        text = (
            f'{{"uri":{dumps(uri(page))},"records":[{records}],'
            f'"paging":{dumps(paging)},"navigation":{dumps(navigation)}}}'
        )
        return text.replace(BASE, self._origin(request))

    @staticmethod
    def _positive_int(raw: str, name: str) -> int:
        if not raw.isdigit() or int(raw) < 1:
            raise _invalid_parameter(name)
        return int(raw)
