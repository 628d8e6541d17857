"""The OpenAPI 3.1 contract of /api/v1, as data; tests check every response against it."""

from __future__ import annotations

from typing import Any

from bot.api.contract_parts import error_spec as _error
from bot.api.contract_parts import json_spec as _json
from bot.api.keys import Scope
from bot.api.people import ApiAvailability
from bot.api.stream_contract import stream_paths, stream_schemas
from bot.webhooks.openapi import webhook_paths, webhook_payloads, webhook_schemas


def _with_headers(response: dict[str, Any], headers: dict[str, Any]) -> dict[str, Any]:
    return {**response, "headers": headers}


def retry_after_header() -> dict[str, Any]:
    return {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    }


def stale_header() -> dict[str, Any]:
    return {
        "RCStatus-Stale-Seconds": {
            "description": (
                "Present when the replica that answered has heard nothing from the leader (the "
                "database is unreachable) for longer than API_STALE_AFTER_SECONDS: the answer "
                "is what it last knew, this many seconds ago."
            ),
            "required": False,
            "schema": {"type": "integer", "minimum": 0},
        }
    }


def challenge_header() -> dict[str, Any]:
    return {
        "WWW-Authenticate": {
            "description": "The Bearer challenge (RFC 6750), naming the error or missing scope.",
            "required": True,
            "schema": {"type": "string", "pattern": "^Bearer( |$)"},
        }
    }


def requires(scope: Scope) -> list[dict[str, list[str]]]:
    """An operation's security: OpenAPI 3.1 lets a bearer requirement name roles, here a scope."""
    return [{"bearer": [scope.value]}]


def auth_errors() -> dict[str, Any]:
    """What any endpoint may answer before its own work: bad parameters, key, scope, budget."""
    return {
        "400": _error("A parameter is not valid."),
        "401": _with_headers(
            _error("No API key, or an unknown or revoked one."), challenge_header()
        ),
        "403": _with_headers(
            _error("The key lacks the scope this endpoint needs."), challenge_header()
        ),
        "429": _with_headers(_error("The key has used its request budget."), retry_after_header()),
        "503": _with_headers(
            _error("The database is unreachable and the answer needs it."), retry_after_header()
        ),
    }


def openapi_document() -> dict[str, Any]:
    """The whole contract; built on each call so nothing shared can be changed by a caller."""
    availability = [a.value for a in ApiAvailability]
    one = "(" + "|".join(availability) + ")"
    timestamp = {"type": ["string", "null"], "format": "date-time"}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "rcstatus availability API",
            "version": "1.0.0",
            "description": (
                "Whether people are free to take a call, from their RingCentral phone presence. "
                "Every request carries `Authorization: Bearer KEY`; keys are made with "
                "`rcstatus-bot api-key create`."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/people/{ref}": {
                "get": {
                    "operationId": "getPerson",
                    "security": requires(Scope.AVAILABILITY_READ),
                    "summary": "One person's availability; optionally wait until they are free.",
                    "parameters": [
                        {
                            "name": "ref",
                            "in": "path",
                            "required": True,
                            "description": (
                                "A Slack user id, an email address, a RingCentral extension id "
                                "or an extension number."
                            ),
                            "schema": {"type": "string", "minLength": 1, "maxLength": 254},
                        },
                        {
                            "name": "wait",
                            "in": "query",
                            "description": "Hold the request until the person is available.",
                            "schema": {"type": "string", "enum": ["available"]},
                        },
                        {
                            "name": "timeout",
                            "in": "query",
                            "description": "Seconds to hold the request (default 30).",
                            "schema": {"type": "number", "minimum": 0, "maximum": 60},
                        },
                    ],
                    "responses": {
                        "200": _with_headers(
                            _json("The person, as they are now.", "Person"), stale_header()
                        ),
                        **auth_errors(),
                        "404": _error("Nobody matches the reference."),
                        "503": _with_headers(
                            _error(
                                "Too many requests are waiting at the gate, or the database "
                                "is unreachable and the answer needs it."
                            ),
                            retry_after_header(),
                        ),
                    },
                }
            },
            "/people": {
                "get": {
                    "operationId": "listPeople",
                    "security": requires(Scope.AVAILABILITY_READ),
                    "summary": "Everyone, paged, optionally only some availabilities.",
                    "parameters": [
                        {
                            "name": "availability",
                            "in": "query",
                            "description": "Only these availabilities (repeat or comma-separate).",
                            "schema": {"type": "string", "pattern": f"^{one}(,{one})*$"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "description": (
                                "`next_cursor` from the previous page; absent or empty for the "
                                "first page. Any other value is refused with 400."
                            ),
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _with_headers(
                            _json("A page of people.", "PeoplePage"), stale_header()
                        ),
                        **auth_errors(),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "security": requires(Scope.AVAILABILITY_READ),
                    "summary": "This document.",
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **auth_errors(),
                    },
                }
            },
            **webhook_paths(auth_errors()),
        },
        "webhooks": webhook_payloads(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                    "additionalProperties": False,
                },
                "Availability": {"type": "string", "enum": availability},
                "Person": {
                    "type": "object",
                    "required": [
                        "slack_user_id",
                        "email",
                        "name",
                        "extension_id",
                        "extension_number",
                        "availability",
                        "since",
                        "on_call_since",
                        "reachable",
                    ],
                    "properties": {
                        "slack_user_id": {"type": "string"},
                        "email": {"type": ["string", "null"]},
                        "name": {"type": ["string", "null"]},
                        "extension_id": {"type": ["string", "null"]},
                        "extension_number": {"type": ["string", "null"]},
                        "availability": {"$ref": "#/components/schemas/Availability"},
                        "since": timestamp,
                        "on_call_since": timestamp,
                        "reachable": {
                            "type": "boolean",
                            "description": "True only when the person is available.",
                        },
                    },
                    "additionalProperties": False,
                },
                "PeoplePage": {
                    "type": "object",
                    "required": ["people", "next_cursor"],
                    "properties": {
                        "people": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Person"},
                        },
                        "next_cursor": {"type": ["string", "null"]},
                    },
                    "additionalProperties": False,
                },
                **webhook_schemas(),
            },
        },
    }
    document["paths"].update(stream_paths(auth_errors()))
    schemas = document["components"]["schemas"]
    schemas.update(stream_schemas(schemas["Person"]))
    return document
