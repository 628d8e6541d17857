"""Recursive key-and-type comparison of simulator output against the reference JSON examples."""

from __future__ import annotations

from typing import Any


def _kind(value: Any) -> str:
    # bool is an int in Python, and JSON cares about the difference.
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    return "object"


def assert_same_shape(
    expected: Any,
    actual: Any,
    *,
    may_add: frozenset[str] = frozenset(),
    may_omit: frozenset[str] = frozenset(),
    path: str = "$",
) -> None:
    """`actual` has the example's keys with the example's JSON types, at every depth.

    `may_add` and `may_omit` name keys (anywhere) that the reference documents as optional:
    extra keys we may send, and example keys we may leave out.
    """
    assert _kind(actual) == _kind(expected), f"{path}: {_kind(actual)} != {_kind(expected)}"
    if isinstance(expected, dict):
        missing = set(expected) - set(actual) - may_omit
        extra = set(actual) - set(expected) - may_add
        assert not missing, f"{path}: missing keys {sorted(missing)}"
        assert not extra, f"{path}: unexpected keys {sorted(extra)}"
        for key in set(expected) & set(actual):
            assert_same_shape(
                expected[key],
                actual[key],
                may_add=may_add,
                may_omit=may_omit,
                path=f"{path}.{key}",
            )
    elif isinstance(expected, list) and expected and actual:
        template = expected[0]
        for index, item in enumerate(actual):
            assert_same_shape(
                template, item, may_add=may_add, may_omit=may_omit, path=f"{path}[{index}]"
            )


def assert_frame_shape(
    expected: list[Any],
    actual: list[Any],
    *,
    may_add: frozenset[str] = frozenset(),
    may_omit: frozenset[str] = frozenset(),
) -> None:
    """A gateway frame `[meta, body]`: each element against its own counterpart in the example."""
    assert len(actual) == len(expected), f"frame has {len(actual)} elements, not {len(expected)}"
    for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
        assert_same_shape(want, got, may_add=may_add, may_omit=may_omit, path=f"$[{index}]")
