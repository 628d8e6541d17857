"""The event stream's part of the OpenAPI document: GET /events and the events it sends."""

from __future__ import annotations

import copy
from typing import Any

from bot.api.contract_parts import error_spec
from bot.api.events import EVENT_TYPE
from bot.api.keys import Scope
from bot.api.stream import EVENTS_PATH, GAP_EVENT, LAST_ID_PARAM

_ID = {"type": "string", "pattern": "^[0-9]{1,18}$"}


def _error(description: str) -> dict[str, Any]:
    """The stream's refusals all say when to try again."""
    retry = {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}}
    return {**error_spec(description), "headers": retry}


def _data(ref: str) -> dict[str, Any]:
    """An SSE `data` field: one line of JSON text, whose value the named schema describes."""
    return {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": f"#/components/schemas/{ref}"},
    }


def stream_paths(auth_errors: dict[str, Any]) -> dict[str, Any]:
    # OpenAPI 3.1 has no itemSchema (3.2 does): for text/event-stream, `schema` describes one
    # event as the SSE spec parses it (its `data` a string), as API fuzzers read it.
    event = {
        "oneOf": [
            {
                "type": "object",
                "required": ["id", "event", "data"],
                "properties": {
                    "id": _ID,
                    "event": {"const": EVENT_TYPE},
                    "data": _data("AvailabilityChanged"),
                    "retry": {"type": "integer", "minimum": 0},
                },
            },
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "id": _ID,
                    "event": {"const": GAP_EVENT},
                    "data": _data("StreamGap"),
                    "retry": {"type": "integer", "minimum": 0},
                },
            },
        ]
    }
    return {
        EVENTS_PATH: {
            "get": {
                "operationId": "streamEvents",
                "security": [{"bearer": [Scope.AVAILABILITY_READ.value]}],
                "summary": "Every change of availability, live, as Server-Sent Events.",
                "description": (
                    f"One `{EVENT_TYPE}` event per change: `id` (send it back as "
                    "`Last-Event-ID` to resume), and one `data:` line of JSON, the same body a "
                    "webhook delivers (`type`, `timestamp`, `data`: the person as "
                    "`GET /people/{ref}` shows them, plus `previous`). The stream opens with a "
                    "`retry:` hint; an idle stream gets a `: keep-alive` comment every "
                    "heartbeat (API_STREAM_HEARTBEAT_SECONDS, default 15). With `Last-Event-ID` "
                    "the changes kept since that id (an hour of them) come first, then live "
                    f"ones, none twice; a `{GAP_EVENT}` event first says when the log no longer "
                    "reaches back that far (re-read `GET /people`). The stream ends when the "
                    "key is revoked, when the client falls too far behind, or when the bot "
                    "stops; reconnect with the last id and nothing is lost."
                ),
                "parameters": [
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "description": "Resume after this event id.",
                        "schema": _ID,
                    },
                    {
                        "name": LAST_ID_PARAM,
                        "in": "query",
                        "description": (
                            "Resume after this event id, for clients that cannot set headers "
                            "(browsers' EventSource); the header wins when both are sent."
                        ),
                        "schema": _ID,
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The event stream; it stays open.",
                        "headers": {
                            "Cache-Control": {"schema": {"const": "no-store"}},
                            "X-Accel-Buffering": {"schema": {"const": "no"}},
                        },
                        "content": {"text/event-stream": {"schema": event}},
                    },
                    **auth_errors,
                    "429": _error(
                        "The key has used its request budget, or holds as many streams open "
                        "as it may (API_MAX_STREAMS_PER_KEY)."
                    ),
                    "503": _error(
                        "As many streams are open as the bot allows (API_MAX_STREAMS), or it "
                        "is stopping."
                    ),
                },
            }
        }
    }


def stream_schemas(person: dict[str, Any]) -> dict[str, Any]:
    """The events' bodies; `person` is the Person schema, which a change extends by `previous`."""
    change = copy.deepcopy(person)
    change["required"] = [*change["required"], "previous"]
    change["properties"]["previous"] = {
        "$ref": "#/components/schemas/Availability",
        "description": "What other systems saw before this change.",
    }
    return {
        "AvailabilityChange": change,
        "AvailabilityChanged": {
            "type": "object",
            "required": ["type", "timestamp", "data"],
            "properties": {
                "type": {"const": EVENT_TYPE},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": {"$ref": "#/components/schemas/AvailabilityChange"},
            },
            "additionalProperties": False,
        },
        "StreamGap": {
            "type": "object",
            "required": ["type", "timestamp", "data"],
            "properties": {
                "type": {"const": GAP_EVENT},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": {
                    "type": "object",
                    "required": ["last_event_id", "oldest_event_id"],
                    "properties": {
                        "last_event_id": {"type": "integer", "minimum": 0},
                        "oldest_event_id": {
                            "type": ["integer", "null"],
                            "description": "The oldest change still kept, if any.",
                        },
                    },
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        },
    }
