"""Response objects every part of the OpenAPI contract shares: the error shape and JSON bodies."""

from __future__ import annotations

from typing import Any


def error_spec(description: str) -> dict[str, Any]:
    """A response whose body is the API's `{"error", "message"}` shape."""
    return json_spec(description, "Error")


def json_spec(description: str, ref: str) -> dict[str, Any]:
    """A JSON response whose body is the named component schema."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }
