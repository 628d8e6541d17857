"""The webhooks' part of the OpenAPI contract: their paths, schemas, and the payloads sent."""

from __future__ import annotations

from typing import Any

from bot.api.contract_parts import error_spec as _error
from bot.api.contract_parts import json_spec as _json
from bot.api.keys import Scope
from bot.api.people import ApiAvailability
from bot.webhooks.api import (
    BODY_LIMIT,
    DESCRIPTION_LIMIT,
    DESCRIPTION_PATTERN,
    MAX_PAGE,
    PEOPLE_LIMIT,
)
from bot.webhooks.safety import URL_LIMIT, URL_PATTERN


def _body(ref: str) -> dict[str, Any]:
    return {
        "required": True,
        "description": f"A JSON object of at most {BODY_LIMIT} bytes; unknown fields are refused.",
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


_SECURITY = [{"bearer": [Scope.WEBHOOKS_WRITE.value]}]
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^wh_[0-9a-f]{16}$"},
}
_MISSING = _error("No webhook has that id.")


def webhook_paths(refusals: dict[str, Any]) -> dict[str, Any]:
    """The /webhooks paths; `refusals` are the answers every endpoint may give before its own
    work (bad parameters, key, scope, budget), as the rest of the document states them."""
    errors = {**refusals, "400": _error("A parameter or the body is not valid.")}
    with_body = {**errors, "413": _error(f"The body is over {BODY_LIMIT} bytes.")}
    paths: dict[str, Any] = {
        "/webhooks": {
            "post": {
                "operationId": "createWebhook",
                "security": _SECURITY,
                "summary": "Register a receiver; the answer holds its signing secret, once.",
                "requestBody": _body("WebhookCreate"),
                "responses": {
                    "201": _json("The new webhook and its secret.", "WebhookCreated"),
                    **with_body,
                    "409": _error("The workspace has as many webhooks as it may."),
                },
            },
            "get": {
                "operationId": "listWebhooks",
                "security": _SECURITY,
                "summary": "Every webhook of the workspace (never their secrets).",
                "responses": {"200": _json("The webhooks.", "WebhookList"), **errors},
            },
        },
        "/webhooks/{id}": {
            "parameters": [_ID],
            "get": {
                "operationId": "getWebhook",
                "security": _SECURITY,
                "summary": "One webhook.",
                "responses": {"200": _json("The webhook.", "Webhook"), **errors, "404": _MISSING},
            },
            "patch": {
                "operationId": "updateWebhook",
                "security": _SECURITY,
                "summary": "Change its URL, filters, description, or turn it off and on "
                "(turning it on again starts afresh: new changes, a whole schedule for the waiting "
                "deliveries).",
                "requestBody": _body("WebhookUpdate"),
                "responses": {
                    "200": _json("The webhook as it is now.", "Webhook"),
                    **with_body,
                    "404": _MISSING,
                },
            },
            "delete": {
                "operationId": "deleteWebhook",
                "security": _SECURITY,
                "summary": "Remove the webhook and its deliveries.",
                "responses": {"204": {"description": "Removed."}, **errors, "404": _MISSING},
            },
        },
        "/webhooks/{id}/deliveries": {
            "parameters": [_ID],
            "get": {
                "operationId": "listWebhookDeliveries",
                "security": _SECURITY,
                "summary": "The webhook's deliveries, newest first, paged.",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "`next_cursor` from the previous page; absent or empty "
                        "for the first page. Any other value is refused with 400.",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": _json("A page of deliveries.", "DeliveryPage"),
                    **errors,
                    "404": _MISSING,
                },
            },
        },
        "/webhooks/{id}/deliveries/{event_id}/retry": {
            "parameters": [
                _ID,
                {
                    "name": "event_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0},
                },
            ],
            "post": {
                "operationId": "retryWebhookDelivery",
                "security": _SECURITY,
                "summary": "Send a delivery again, with a fresh retry schedule, after whatever "
                "its person has waiting before it.",
                "responses": {
                    "202": _json("The delivery, back in line.", "Delivery"),
                    **errors,
                    "404": _error("No such webhook, or it has no delivery of that event."),
                },
            },
        },
        "/webhooks/{id}/ping": {
            "parameters": [_ID],
            "post": {
                "operationId": "pingWebhook",
                "security": _SECURITY,
                "summary": "Send a signed `webhook.ping` now (once, not retried) and tell what "
                "the receiver answered.",
                "responses": {
                    "200": _json("What the receiver answered.", "PingResult"),
                    **errors,
                    "404": _MISSING,
                },
            },
        },
    }
    return paths


def webhook_schemas() -> dict[str, Any]:
    availability = [a.value for a in ApiAvailability]
    timestamp = {"type": ["string", "null"], "format": "date-time"}
    url = {
        "type": "string",
        "maxLength": URL_LIMIT,
        "pattern": URL_PATTERN,
        "description": "An absolute https:// URL in ASCII (punycode the host, percent-encode "
        "the rest), with a host, no user information and, if any, a port from 1 to 65535. Its "
        "host must resolve, and only to public addresses: private, loopback, link-local and "
        "metadata ones are refused (at registration and at each delivery), and so is http://, "
        "unless the bot runs with WEBHOOK_ALLOW_PRIVATE_URLS=true.",
    }
    people = {
        "type": ["array", "null"],
        "minItems": 1,
        "maxItems": PEOPLE_LIMIT,
        "items": {"type": "string", "minLength": 1, "maxLength": 254},
        "description": "Only these people's changes (Slack user ids, emails, extension ids or "
        "numbers); null or absent for everyone.",
    }
    wanted = {
        "type": ["array", "null"],
        "minItems": 1,
        "maxItems": len(availability),
        "items": {"$ref": "#/components/schemas/Availability"},
        "description": "Only changes to these availabilities; null or absent for every change.",
    }
    description = {
        "type": "string",
        "maxLength": DESCRIPTION_LIMIT,
        "pattern": DESCRIPTION_PATTERN,
        "description": "Any text without control characters (nor unpaired surrogates).",
    }
    webhook_properties: dict[str, Any] = {
        "id": {"type": "string"},
        "url": {"type": "string"},
        "people": {
            "type": ["array", "null"],
            "items": {"type": "string"},
            "description": "Slack user ids.",
        },
        "availability": {
            "type": ["array", "null"],
            "items": {"type": "string", "enum": availability},
        },
        "description": {"type": "string"},
        "enabled": {"type": "boolean"},
        "disabled_reason": {"type": ["string", "null"]},
        "created_by": {"type": "string", "description": "The id of the API key that made it."},
        "created_at": timestamp,
        "updated_at": timestamp,
    }
    required = list(webhook_properties)
    return {
        "WebhookCreate": {
            "type": "object",
            "required": ["url"],
            "properties": {
                "url": url,
                "people": people,
                "availability": wanted,
                "description": description,
            },
            "additionalProperties": False,
        },
        "WebhookUpdate": {
            "type": "object",
            "properties": {
                "url": url,
                "people": people,
                "availability": wanted,
                "description": description,
                "enabled": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
        "Webhook": {
            "type": "object",
            "required": required,
            "properties": webhook_properties,
            "additionalProperties": False,
        },
        "WebhookCreated": {
            "type": "object",
            "required": [*required, "secret"],
            "properties": {
                **webhook_properties,
                "secret": {
                    "type": "string",
                    "pattern": "^whsec_[A-Za-z0-9+/=]+$",
                    "description": "The signing secret, shown only here.",
                },
            },
            "additionalProperties": False,
        },
        "WebhookList": {
            "type": "object",
            "required": ["webhooks"],
            "properties": {
                "webhooks": {"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}}
            },
            "additionalProperties": False,
        },
        "Delivery": {
            "type": "object",
            "required": [
                "event_id",
                "webhook_id",
                "slack_user_id",
                "state",
                "attempts",
                "last_status_code",
                "last_error",
                "next_attempt_at",
                "created_at",
                "finished_at",
            ],
            "properties": {
                "event_id": {"type": "integer"},
                "webhook_id": {"type": "string", "description": "The `webhook-id` header sent."},
                "slack_user_id": {"type": "string"},
                "state": {
                    "type": "string",
                    "enum": ["queued", "pending", "delivered", "failed"],
                    "description": "queued: behind an older delivery of the same person; "
                    "pending: next for its person, attempted at next_attempt_at.",
                },
                "attempts": {"type": "integer", "minimum": 0},
                "last_status_code": {"type": ["integer", "null"]},
                "last_error": {"type": ["string", "null"]},
                "next_attempt_at": timestamp,
                "created_at": timestamp,
                "finished_at": timestamp,
            },
            "additionalProperties": False,
        },
        "DeliveryPage": {
            "type": "object",
            "required": ["deliveries", "next_cursor"],
            "properties": {
                "deliveries": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Delivery"},
                },
                "next_cursor": {"type": ["string", "null"]},
            },
            "additionalProperties": False,
        },
        "PingResult": {
            "type": "object",
            "required": ["webhook_id", "delivered", "status_code", "error"],
            "properties": {
                "webhook_id": {"type": "string"},
                "delivered": {"type": "boolean", "description": "The receiver answered 2xx."},
                "status_code": {"type": ["integer", "null"]},
                "error": {"type": ["string", "null"]},
            },
            "additionalProperties": False,
        },
        "AvailabilityChanged": {
            "type": "object",
            "required": ["type", "timestamp", "data"],
            "properties": {
                "type": {"const": "availability.changed"},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": {
                    "type": "object",
                    "description": "The person's fields as GET /people/{ref} gives them, plus "
                    "`previous`: what other systems saw before this change.",
                    "required": ["slack_user_id", "availability", "previous"],
                    "properties": {
                        "slack_user_id": {"type": "string"},
                        "availability": {"$ref": "#/components/schemas/Availability"},
                        "previous": {"$ref": "#/components/schemas/Availability"},
                    },
                },
            },
            "additionalProperties": False,
        },
        "WebhookPing": {
            "type": "object",
            "required": ["type", "timestamp", "data"],
            "properties": {
                "type": {"const": "webhook.ping"},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": {
                    "type": "object",
                    "required": ["webhook_id"],
                    "properties": {"webhook_id": {"type": "string"}},
                },
            },
            "additionalProperties": False,
        },
    }


def _signed_post(summary: str, ref: str) -> dict[str, Any]:
    signed = {"required": True, "schema": {"type": "string"}}
    return {
        "post": {
            "summary": summary,
            "parameters": [
                {"name": "webhook-id", "in": "header", **signed},
                {"name": "webhook-timestamp", "in": "header", **signed},
                {"name": "webhook-signature", "in": "header", **signed},
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}
                },
            },
            "responses": {
                "2XX": {"description": "Taken. Anything else is retried (410 turns it off)."}
            },
        }
    }


def webhook_payloads() -> dict[str, Any]:
    """OpenAPI 3.1's top-level `webhooks`: what receivers are sent, signed per Standard
    Webhooks (`webhook-signature` is `v1,` and base64 HMAC-SHA256 of `id.timestamp.body`)."""
    return {
        "availability.changed": _signed_post(
            "A person's availability changed (the same `webhook-id` on every retry).",
            "AvailabilityChanged",
        ),
        "webhook.ping": _signed_post("A test sent by POST /webhooks/{id}/ping.", "WebhookPing"),
    }
