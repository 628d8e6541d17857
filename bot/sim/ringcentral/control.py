"""The RingCentral simulator's control API under /_sim/: drive and inspect it over HTTP, no auth."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.sim.ringcentral.directory import DirectoryError
from bot.sim.ringcentral.rest import json_response

if TYPE_CHECKING:
    from bot.sim.ringcentral.server import RingCentralSimulator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def _json_object(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        value = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ControlError(f"body is not JSON: {error}") from error
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ControlError("body must be a JSON object")
    return value


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ControlError(f"{name} must be an integer")
    try:
        return int(value)
    except ValueError as error:
        raise ControlError(f"{name} must be an integer") from error


def _optional_float(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(f"{name} must be a number")
    return float(value)


class ControlApi:
    """Thin HTTP wrappers over the simulator's Python helpers."""

    def __init__(self, simulator: RingCentralSimulator) -> None:
        self._sim = simulator

    def routes(self) -> list[web.RouteDef]:
        wrap = self._wrap
        return [
            web.get("/_sim/credentials", wrap(self.credentials)),
            web.get("/_sim/extensions", wrap(self.list_extensions)),
            web.post("/_sim/extensions", wrap(self.add_extension)),
            web.get("/_sim/extensions/{id}", wrap(self.get_extension)),
            web.delete("/_sim/extensions/{id}", wrap(self.delete_extension)),
            web.post("/_sim/extensions/{id}/presence", wrap(self.set_presence)),
            web.post("/_sim/extensions/{id}/call", wrap(self.call)),
            web.post("/_sim/extensions/{id}/disable", wrap(self.disable)),
            web.post("/_sim/extensions/{id}/enable", wrap(self.enable)),
            web.post("/_sim/ws/drop", wrap(self.drop)),
            web.post("/_sim/ws/send", wrap(self.send_frame)),
            web.post("/_sim/tokens/expire", wrap(self.expire_tokens)),
            web.post("/_sim/tokens/revoke", wrap(self.revoke_tokens)),
            web.get("/_sim/faults", wrap(self.list_faults)),
            web.post("/_sim/faults", wrap(self.add_fault)),
            web.delete("/_sim/faults", wrap(self.clear_faults)),
            web.get("/_sim/switches", wrap(self.switches)),
            web.post("/_sim/switches", wrap(self.set_switches)),
            web.get("/_sim/stats", wrap(self.stats)),
            web.post("/_sim/stats/reset", wrap(self.reset_stats)),
            web.get("/_sim/events", wrap(self.events)),
        ]

    @staticmethod
    def _wrap(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except ControlError as error:
                return json_response({"error": str(error)}, status=error.status)
            except DirectoryError as error:
                return json_response({"error": str(error)}, status=error.status)
            except ValueError as error:
                return json_response({"error": str(error)}, status=400)

        return wrapped

    @staticmethod
    def _id(request: web.Request) -> int:
        return _int(request.match_info["id"], "extension id")

    async def credentials(self, request: web.Request) -> web.StreamResponse:
        return json_response(
            {
                "client_id": self._sim.client_id,
                "client_secret": self._sim.client_secret,
                "jwt": self._sim.jwt,
                "server": self._sim.url,
                "account_id": self._sim.account_id,
                "owner_extension_id": self._sim.owner_extension_id,
            }
        )

    async def list_extensions(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._sim.extensions())

    async def get_extension(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._sim.extension(self._id(request)))

    async def add_extension(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        number = body.get("extensionNumber")
        extension_id = self._sim.add_extension(
            first_name=str(body.get("firstName", "")),
            last_name=str(body.get("lastName", "")),
            email=str(body.get("email", "")),
            extension_number=None if number is None else str(number),
            status=str(body.get("status", "Enabled")),
        )
        return json_response(self._sim.extension(extension_id), status=201)

    async def delete_extension(self, request: web.Request) -> web.StreamResponse:
        extension_id = self._id(request)
        self._sim.delete_extension(extension_id)
        return json_response({"deleted": extension_id})

    async def set_presence(self, request: web.Request) -> web.StreamResponse:
        extension_id = self._id(request)
        fields = await _json_object(request)
        if "extension_id" in fields:
            raise ControlError("unknown presence field 'extension_id'")
        sequence = self._sim.set_presence(extension_id, **fields)
        return json_response({"extension": self._sim.extension(extension_id), "sequence": sequence})

    async def call(self, request: web.Request) -> web.StreamResponse:
        extension_id = self._id(request)
        body = await _json_object(request)
        if "state" not in body:
            raise ControlError("state is required")
        direction = body.get("direction", "Inbound")
        if direction not in ("Inbound", "Outbound"):
            raise ControlError("direction must be Inbound or Outbound")
        call_id = self._sim.call(
            extension_id,
            str(body["state"]),
            call_id=None if body.get("call_id") is None else str(body["call_id"]),
            direction=direction,
            peer_number=None if body.get("peer_number") is None else str(body["peer_number"]),
            peer_name=None if body.get("peer_name") is None else str(body["peer_name"]),
        )
        return json_response({"call_id": call_id, "extension": self._sim.extension(extension_id)})

    async def disable(self, request: web.Request) -> web.StreamResponse:
        extension_id = self._id(request)
        self._sim.disable_extension(extension_id)
        return json_response(self._sim.extension(extension_id))

    async def enable(self, request: web.Request) -> web.StreamResponse:
        extension_id = self._id(request)
        self._sim.enable_extension(extension_id)
        return json_response(self._sim.extension(extension_id))

    async def drop(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        error = body.get("error")
        if error is not None and not isinstance(error, str):
            raise ControlError("error must be a string such as WSG-903")
        return json_response({"dropped": await self._sim.drop_sockets(error)})

    async def send_frame(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        frame = body.get("frame")
        if not isinstance(frame, str):
            raise ControlError("frame must be a string, sent to every socket as it is")
        return json_response({"sent": self._sim.send_raw_frame(frame)})

    async def expire_tokens(self, request: web.Request) -> web.StreamResponse:
        return json_response({"expired": self._sim.expire_tokens()})

    async def revoke_tokens(self, request: web.Request) -> web.StreamResponse:
        return json_response({"revoked": self._sim.revoke_sessions()})

    async def list_faults(self, request: web.Request) -> web.StreamResponse:
        return json_response({"faults": self._sim.faults()})

    async def add_fault(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        if not isinstance(body.get("path"), str) or "status" not in body:
            raise ControlError("path (string) and status are required")
        method = body.get("method")
        fault_id = self._sim.add_fault(
            body["path"],
            _int(body["status"], "status"),
            count=_int(body.get("count", 1), "count"),
            retry_after=_optional_float(body.get("retry_after"), "retry_after"),
            method=None if method is None else str(method),
        )
        return json_response({"id": fault_id}, status=201)

    async def clear_faults(self, request: web.Request) -> web.StreamResponse:
        return json_response({"cleared": self._sim.clear_faults()})

    async def switches(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._sim.switches())

    async def set_switches(self, request: web.Request) -> web.StreamResponse:
        # SwitchError is a ValueError: a bad switch is a 400 naming it, and nothing changes.
        return json_response(self._sim.set_switches(**await _json_object(request)))

    async def stats(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._sim.stats())

    async def reset_stats(self, request: web.Request) -> web.StreamResponse:
        self._sim.reset_stats()
        return json_response(self._sim.stats())

    async def events(self, request: web.Request) -> web.StreamResponse:
        after = _int(request.query.get("after", "0"), "after")
        extension = request.query.get("extension_id")
        limit = request.query.get("limit")
        return json_response(
            {
                "events": self._sim.events(
                    after=after,
                    extension_id=None if extension is None else _int(extension, "extension_id"),
                    limit=None if limit is None else _int(limit, "limit"),
                )
            }
        )
