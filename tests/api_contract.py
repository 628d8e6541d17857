"""Checks API answers against the bot's OpenAPI document: status, headers, body, stream events."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from bot.api.openapi import openapi_document

JSON = "application/json"
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339, as the document promises (jsonschema checks it only with an extra package)."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.fullmatch(value):
        return False
    datetime.fromisoformat(value)  # a 30th of February raises
    return True


def _operation(path: str, method: str) -> tuple[str, dict[str, Any]] | None:
    document = openapi_document()
    for template, operations in document["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            return template, operations[method.lower()]
    return None


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("Content-Type", "").split(";")[0].strip().lower()


def check_response(
    method: str, path: str, status: int, body: Any, headers: Mapping[str, str]
) -> None:
    """Fail unless `status` is documented for the operation, the response's content type is one
    documented for that status, every required header it documents is present and every
    documented header that is present matches its schema, and a JSON `body` matches its schema.
    A path or method the document does not have must be a 404 or 405 (with `Allow`) in the
    error shape. `headers` is the response's (case-insensitive, as aiohttp gives them)."""
    found = _operation(path.split("?")[0], method)
    if found is None:
        where = f"{method} {path}"
        assert status in (404, 405), f"{where} is undocumented but answered {status}"
        assert _media_type(headers) == JSON, f"{where}: {headers.get('Content-Type')}"
        if status == 405:
            assert headers.get("Allow"), f"{where}: a 405 without Allow"
        _validate({"$ref": "#/components/schemas/Error"}, body, where)
        return
    template, operation = found
    where = f"{method} {template} {status}"
    responses = operation["responses"]
    assert str(status) in responses, f"{method} {template}: {status} is not documented"
    response = responses[str(status)]
    for name, header in response.get("headers", {}).items():
        value = headers.get(name)
        if value is None:
            assert not header.get("required"), f"{where}: the {name} header is missing"
            continue
        _validate(header["schema"], _header_value(value, header["schema"]), f"{where} {name}")
    content = response.get("content", {})
    if not content:
        assert body in (None, "", b""), f"{where}: a body where none is documented"
        return
    media_type = _media_type(headers)
    assert media_type in content, f"{where}: {media_type!r} is not one of {sorted(content)}"
    if media_type == JSON:
        _validate(content[JSON]["schema"], body, where)


def _header_value(value: str, schema: dict[str, Any]) -> Any:
    """A header as its schema reads it: headers are text, integers are written as digits."""
    if schema.get("type") == "integer" and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    return value


def _validate(schema: dict[str, Any], body: Any, where: str) -> None:
    rooted = {**schema, "components": openapi_document()["components"]}
    validator = Draft202012Validator(rooted, format_checker=FORMATS)
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, f"{where}: {[e.message for e in errors]}"


def check_event(path: str, event: str, data: str, event_id: str | None) -> None:
    """Fail unless one parsed Server-Sent Event matches the operation's text/event-stream
    schema, and its `data` the JSON schema named for that event."""
    found = _operation(path.split("?")[0], "get")
    assert found is not None, f"GET {path} is undocumented"
    template, operation = found
    schema = operation["responses"]["200"]["content"]["text/event-stream"]["schema"]
    item = {"event": event, "data": data, **({"id": event_id} if event_id else {})}
    _validate(schema, item, f"GET {template} event {event}")
    # contentSchema is an annotation to JSON Schema validators: the body is checked here.
    branches = [b for b in schema["oneOf"] if b["properties"]["event"]["const"] == event]
    assert len(branches) == 1, f"GET {template}: event {event!r} is not documented"
    _validate(branches[0]["properties"]["data"]["contentSchema"], json.loads(data), event)
