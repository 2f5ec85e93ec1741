"""Strict JSON for anything a client sends (REST bodies, dashboard frames). Pure.

Strict: UTF-8 only, no NaN or Infinity (not JSON, and PostgreSQL's jsonb refuses them), a
bounded size, and bounded nesting — checked without recursion once parsed, and a document
nested deeper than the interpreter's recursion limit is refused instead of raising
RecursionError out of ``json.loads``.
"""

from __future__ import annotations

import json
from typing import Any


class JSONRejected(ValueError):
    """Why a document was refused; ``code`` is ``"too_large"`` or ``"parse_error"``."""

    def __init__(self, message: str, *, code: str = "parse_error") -> None:
        super().__init__(message)
        self.code = code


def _reject_constant(value: str) -> Any:
    raise ValueError(f"{value} is not valid JSON")


def depth(value: Any) -> int:
    """Nesting depth of a parsed document: 0 for a scalar, 1 for a flat object or array."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def loads_strict(data: bytes | str, *, max_bytes: int, max_depth: int | None = None) -> Any:
    """Parse ``data`` (UTF-8 bytes or text) strictly; raise ``JSONRejected`` saying why not."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise JSONRejected(f"larger than {max_bytes} bytes", code="too_large")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONRejected(f"body is not UTF-8: {exc}") from None
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise JSONRejected("nested too deeply") from None
    except ValueError as exc:
        raise JSONRejected(str(exc)) from None
    if max_depth is not None and depth(value) > max_depth:
        raise JSONRejected(f"nests deeper than {max_depth} levels")
    return value
