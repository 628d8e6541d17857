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
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{([^}]+)\}", path)), where
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert parameter["required"] is True, where
