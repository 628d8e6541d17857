"""A Server-Sent Events client for tests, parsing the stream as the WHATWG HTML spec says."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str
    last_event_id: str
    """The last event id as the client knows it when this event is dispatched."""
    had_id: bool
    """Whether this event carried an `id:` field itself."""

    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    """Reads events off a streaming response; comments and the retry hint are kept aside."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._content = response.content
        self.comments: list[str] = []
        self.events: list[SseEvent] = []
        self.retry: int | None = None
        self.last_event_id = ""
        self._data: list[str] = []
        self._type = ""
        self._had_id = False

    async def next_event(self, timeout: float = 10.0) -> SseEvent:
        """The next dispatched event; EOFError if the stream ends first."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self._line()
                if event is not None:
                    return event

    async def until_comment(self, text: str, timeout: float = 10.0) -> None:
        """Read on (keeping events) until a comment `text` arrives."""
        async with asyncio.timeout(timeout):
            while text not in self.comments:
                event = await self._line()
                if event is not None:
                    self.events.append(event)

    async def until_end(self, timeout: float = 10.0) -> None:
        """Read on (keeping events) until the server ends the stream."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = await self._line()
                    if event is not None:
                        self.events.append(event)
        except EOFError:
            return

    async def _line(self) -> SseEvent | None:
        raw = await self._content.readline()
        if not raw:
            raise EOFError("the stream ended")
        if not raw.endswith(b"\n"):
            raise EOFError("the stream ended inside a line")
        line = raw.decode("utf-8").removesuffix("\n").removesuffix("\r")
        assert "\r" not in line, f"a bare CR would split this line for other clients: {line!r}"
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments.append(line[1:].removeprefix(" "))
            return None
        field, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._type = value
        elif field == "id" and "\0" not in value:
            self.last_event_id = value
            self._had_id = True
        elif field == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        data, event_type, had_id = self._data, self._type, self._had_id
        self._data, self._type, self._had_id = [], "", False
        if not data:
            return None
        return SseEvent(event_type or "message", "\n".join(data), self.last_event_id, had_id)
