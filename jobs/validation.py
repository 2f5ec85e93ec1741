"""Checks on client-supplied JSON that every database accepts and every limit holds. Pure."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from jobs.exceptions import InvalidInput, JobNotFound


def check_text(field: str, value: str) -> None:
    """PostgreSQL rejects NUL in text and UTF-8 rejects lone surrogates: refuse both up front."""
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field, "must be valid Unicode (no lone surrogates)") from None


def check_json(field: str, value: Any, *, max_depth: int, max_bytes: int) -> None:
    """Bound nesting depth and encoded size; check every string and key."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > max_depth:
                raise InvalidInput(field, f"nests deeper than {max_depth} levels")
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                if isinstance(key, str):
                    check_text(field, key)
                stack.append((child, depth + 1))
        elif isinstance(node, str):
            check_text(field, node)
        elif isinstance(node, float) and not math.isfinite(node):
            raise InvalidInput(field, "must not contain NaN or Infinity")
    # Measured as stored: JSONField writes json.dumps' ASCII form, where one non-ASCII character
    # becomes a 6- or 12-byte \uXXXX escape.
    size = len(json.dumps(value))
    if size > max_bytes:
        raise InvalidInput(field, f"is {size} bytes; the limit is {max_bytes}")


def check_known_params(names: Iterable[str], allowed: Iterable[str]) -> None:
    """Refuse a query parameter no one reads: a misspelt filter must not silently list everything."""
    allowed = sorted(set(allowed))
    for name in sorted(names):
        if name not in allowed:
            # The name goes back as a JSON key: escape lone surrogates, which UTF-8 cannot encode.
            shown = name.encode("utf-8", "backslashreplace").decode("utf-8")
            raise InvalidInput(shown, f"unknown query parameter; allowed: {', '.join(allowed) or 'none'}")


def check_int(field: str, value: Any, *, low: int, high: int) -> int:
    """An integer (not a bool, float or string) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, "must be an integer")
    if not low <= value <= high:
        raise InvalidInput(field, f"must be between {low} and {high}")
    return value


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> str:
    """``value`` with NUL and lone surrogates replaced by U+FFFD, for text no client wrote."""
    return _UNSTORABLE.sub("\ufffd", value)


def storable_json(value: Any) -> Any:
    """``value`` with every string and key made storable (a handler's result, say)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(k)): storable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v) for v in value]
    return value


def job_uuid(value: Any) -> UUID:
    """A job id as a UUID; ``JobNotFound`` when it cannot be one (a malformed id is a 404, not a 500)."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise JobNotFound(f"no job {value!r}") from None
