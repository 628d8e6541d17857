"""Helpers for the RingCentral simulator tests: a manual clock, a raw gateway client, raw REST."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import websockets
from websockets.asyncio.client import ClientConnection

from bot.sim.ringcentral import RingCentralSimulator

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TIMEOUT = 5.0


class ManualClock:
    """A monotonic clock the test moves by hand, for rate windows and token lifetimes."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def basic_auth(sim: RingCentralSimulator) -> str:
    raw = f"{sim.client_id}:{sim.client_secret}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@dataclass
class Rest:
    """A raw HTTP client for what the SDK cannot show (status codes, headers, error bodies)."""

    sim: RingCentralSimulator
    http: aiohttp.ClientSession
    access_token: str = ""
    refresh_token: str = ""

    async def login(self) -> dict[str, Any]:
        status, body, _ = await self.form(
            "/restapi/oauth/token", {"grant_type": JWT_GRANT, "assertion": self.sim.jwt}
        )
        assert status == 200, body
        self.access_token = body["access_token"]
        self.refresh_token = body["refresh_token"]
        return dict(body)

    async def refresh(self) -> dict[str, Any]:
        status, body, _ = await self.form(
            "/restapi/oauth/token",
            {"grant_type": "refresh_token", "refresh_token": self.refresh_token},
        )
        assert status == 200, body
        self.access_token = body["access_token"]
        self.refresh_token = body["refresh_token"]
        return dict(body)

    async def form(
        self, path: str, data: dict[str, str], authorization: str | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {"Authorization": authorization or basic_auth(self.sim)}
        async with self.http.post(self.sim.url + path, data=data, headers=headers) as response:
            return response.status, await self._body(response), dict(response.headers)

    async def get(
        self, path_or_url: str, token: str | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        url = path_or_url if path_or_url.startswith("http") else self.sim.url + path_or_url
        headers = {"Authorization": f"Bearer {token or self.access_token}"}
        async with self.http.get(url, headers=headers) as response:
            return response.status, await self._body(response), dict(response.headers)

    async def ws_token(self, token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token or self.access_token}"}
        async with self.http.post(self.sim.url + "/restapi/oauth/wstoken", headers=headers) as r:
            body = await r.json()
            assert r.status == 200, body
            return dict(body)

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.sim.url + path, json=body) as response:
            payload = await response.json()
            assert response.status < 300, payload
            return payload

    @staticmethod
    async def _body(response: aiohttp.ClientResponse) -> Any:
        text = await response.text()
        if "json" in response.headers.get("Content-Type", "") and text:
            return json.loads(text)
        return text


@dataclass
class GatewayClient:
    """A bare client of the WebSocket gateway following reference §5, message by message."""

    ws: ClientConnection
    received: list[list[Any]] = field(default_factory=list)
    requests_sent: int = 0

    @classmethod
    async def connect(
        cls, rest: Rest, *, wsc: str | None = None, token: str | None = None, **options: Any
    ) -> GatewayClient:
        issued = await rest.ws_token(token)
        url = f"{issued['uri']}?access_token={issued['ws_access_token']}"
        if wsc is not None:
            url += f"&wsc={wsc}"
        return cls(await websockets.connect(url, **options))

    async def recv(self, within: float = DEFAULT_TIMEOUT) -> list[Any]:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), within))
        assert isinstance(frame, list)
        self.received.append(frame)
        return frame

    async def recv_type(self, kind: str, within: float = DEFAULT_TIMEOUT) -> list[Any]:
        """The next frame of this meta type; anything else arriving first fails the test."""
        frame = await self.recv(within)
        assert frame[0]["type"] == kind, frame
        return frame

    async def send(self, frame: list[Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def request(
        self, method: str, path: str, *body: Any, within: float = DEFAULT_TIMEOUT
    ) -> list[Any]:
        """A ClientRequest and its answer (matched by messageId); `body` omitted = no element."""
        self.requests_sent += 1
        message = f"req-{self.requests_sent}"
        meta = {"type": "ClientRequest", "messageId": message, "method": method, "path": path}
        await self.send([meta, *body])
        while True:
            frame = await self.recv(within)
            if frame[0].get("messageId") == message:
                return frame

    async def subscribe(self, *filters: str) -> dict[str, Any]:
        frame = await self.request(
            "POST",
            "/restapi/v1.0/subscription",
            {"eventFilters": list(filters), "deliveryMode": {"transportType": "WebSocket"}},
        )
        assert frame[0]["status"] == 200, frame
        return dict(frame[1])

    async def notification(self, within: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        frame = await self.recv_type("ServerNotification", within)
        return dict(frame[1])

    async def expect_closed(self, within: float = DEFAULT_TIMEOUT) -> None:
        await asyncio.wait_for(self.ws.wait_closed(), within)

    async def close(self) -> None:
        await self.ws.close()
