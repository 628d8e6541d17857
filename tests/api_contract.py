"""Checks API answers against the OpenAPI document the bot serves: status, body, each event."""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import Draft202012Validator

from bot.api.openapi import openapi_document


def _operation(path: str, method: str) -> tuple[str, dict[str, Any]] | None:
    document = openapi_document()
    for template, operations in document["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            return template, operations[method.lower()]
    return None


def check_response(method: str, path: str, status: int, body: Any) -> None:
    """Fail unless `status` is documented for the operation and `body` matches its schema;
    a path or method the document does not have must be a 404 or 405 in the error shape."""
    found = _operation(path.split("?")[0], method)
    if found is None:
        assert status in (404, 405), f"{method} {path} is undocumented but answered {status}"
        _validate({"$ref": "#/components/schemas/Error"}, body, f"{method} {path}")
        return
    template, operation = found
    responses = operation["responses"]
    assert str(status) in responses, f"{method} {template}: {status} is not documented"
    content = responses[str(status)].get("content", {}).get("application/json")
    if content is not None:
        _validate(content["schema"], body, f"{method} {template} {status}")


def _validate(schema: dict[str, Any], body: Any, where: str) -> None:
    rooted = {**schema, "components": openapi_document()["components"]}
    errors = sorted(Draft202012Validator(rooted).iter_errors(body), key=str)
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
