"""Checks an API response against the OpenAPI document the bot serves: status and body."""

from __future__ import annotations

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
