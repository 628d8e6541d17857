"""The OpenAPI document is valid OpenAPI 3.1, and every operation keeps the house rules."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bot.api.keys import Scope
from bot.api.openapi import openapi_document

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def _parameters(document: dict[str, Any], path: str, operation: dict[str, Any]) -> list[Any]:
    """An operation's parameters: its path item's, overridden by its own of the same name
    and place, as OpenAPI reads them."""
    merged = {(p["name"], p["in"]): p for p in document["paths"][path].get("parameters", [])}
    merged.update({(p["name"], p["in"]): p for p in operation.get("parameters", [])})
    return list(merged.values())


def _schemas(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON Schema in the document: components, parameters, headers and media types."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" and isinstance(value, dict):
                yield value
            elif key == "schemas" and isinstance(value, dict):
                yield from value.values()
            yield from _schemas(value)
    elif isinstance(node, list):
        for item in node:
            yield from _schemas(item)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _meta_validate(document: dict[str, Any]) -> None:
    """The official OpenAPI 3.1 schema, as schemathesis loads and checks a document."""
    schemathesis.openapi.from_dict(document).validate()


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1.")
    _meta_validate(document)


def test_the_validator_refuses_a_broken_document() -> None:
    document = openapi_document()
    broken = copy.deepcopy(document)
    del broken["info"]
    with pytest.raises(jsonschema_rs.ValidationError):
        _meta_validate(broken)
    misspelt = copy.deepcopy(document)
    misspelt["paths"]["/people"]["get"]["responses"]["200"]["content"] = {"application/json": 1}
    with pytest.raises(jsonschema_rs.ValidationError):
        _meta_validate(misspelt)


def test_every_schema_is_valid_json_schema_2020_12_and_every_ref_resolves() -> None:
    document = openapi_document()
    registry: Registry[Any] = Registry().with_resource(
        "urn:rcstatus:openapi", Resource(contents=document, specification=DRAFT202012)
    )
    resolver = registry.resolver(base_uri="urn:rcstatus:openapi")
    found = list(_schemas(document))
    assert len(found) > 10
    for schema in found:
        Draft202012Validator.check_schema(schema)
    refs = set(_refs(document))
    assert "#/components/schemas/Person" in refs
    for ref in refs:
        assert resolver.lookup(ref).contents is not None, ref


def test_every_operation_names_its_scope_and_documents_refusals_and_path_parameters() -> None:
    document = openapi_document()
    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids)), "operationIds are unique"
    scopes = {s.value for s in Scope}
    for path, method, operation in _operations(document):
        where = f"{method.upper()} {path}"
        (requirement,) = operation["security"]
        assert set(requirement) == {"bearer"}, where
        assert requirement["bearer"], where
        assert set(requirement["bearer"]) <= scopes, where
        responses = operation["responses"]
        for status, header in (("401", "WWW-Authenticate"), ("403", "WWW-Authenticate")):
            assert responses[status]["headers"][header]["required"] is True, where
        assert responses["429"]["headers"]["Retry-After"]["required"] is True, where
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                content = response["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/Error"}, where
                if status == "503":
                    assert response["headers"]["Retry-After"]["required"] is True, where
        parameters = _parameters(document, path, operation)
        declared = {p["name"] for p in parameters if p["in"] == "path"}
        assert declared == set(re.findall(r"\{([^}]+)\}", path)), where
        for parameter in parameters:
            if parameter["in"] == "path":
                assert parameter["required"] is True, where


def test_path_level_parameters_count_for_each_operation_under_them() -> None:
    document = openapi_document()
    with_shared = [path for path, item in document["paths"].items() if "parameters" in item]
    assert "/webhooks/{id}" in with_shared
    for path in with_shared:
        for _, method, operation in (o for o in _operations(document) if o[0] == path):
            names = {p["name"] for p in _parameters(document, path, operation)}
            assert "id" in names, f"{method.upper()} {path}"


def test_each_webhook_payload_is_a_signed_json_post() -> None:
    """The top-level `webhooks`: what a receiver is sent, one entry per event type."""
    document = openapi_document()
    schemas = document["components"]["schemas"]
    assert set(document["webhooks"]) == {"availability.changed", "webhook.ping"}
    for name, item in document["webhooks"].items():
        assert set(item) == {"post"}, name
        post = item["post"]
        headers = {p["name"]: p for p in post["parameters"] if p["in"] == "header"}
        assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}, name
        assert all(h["required"] for h in headers.values()), name
        ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        payload = schemas[ref.rpartition("/")[2]]
        assert payload["properties"]["type"] == {"const": name}, name
        assert "security" not in post, f"{name}: receivers are not called with our keys"
