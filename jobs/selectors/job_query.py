"""What a job list asks for, parsed and checked in one place: ``JobQuery`` and ``job_query_parse``.

``job_query_parse`` turns query-string values (name -> every value given) into a ``JobQuery``, or
raises ``InvalidInput`` naming the parameter. ``jobs.selectors.jobs.job_list`` runs the query.
No database access: the checks need none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from jobs import conf, jsonio, validation
from jobs.exceptions import InvalidInput
from jobs.models import JobStatus

ORDERINGS = {"pop": None, "newest": ("-seq",), "oldest": ("seq",)}

# Fewer than 8 hex characters would match a sixteenth of a million jobs per character short: a
# lookup, not a scan of the table. 32 is the whole id.
ID_PREFIX_MIN = 8
ID_PREFIX_MAX = 32
# Where the canonical form (8-4-4-4-12) has its dashes.
_DASHES = frozenset({8, 13, 18, 23})
_HEX = frozenset("0123456789abcdef")

PARAMETERS = (
    "status", "kind", "dependency", "id_prefix", "payload_contains", "created_after", "created_before", "ordering",
)


@dataclass(frozen=True)
class JobQuery:
    """A checked job search; empty fields do not filter."""

    statuses: tuple[str, ...] = ()  # any of these
    kind: str | None = None
    dependency: str | None = None
    id_prefix: str | None = None  # 8 to 32 lowercase hex digits, no dashes
    payload_contains: dict[str, Any] | None = None  # JSON containment, as PostgreSQL's @> defines it
    created_after: datetime | None = None  # created at or after (inclusive)
    created_before: datetime | None = None  # created strictly before (exclusive): windows tile
    ordering: str = "newest"


def job_query_parse(params: Mapping[str, Sequence[str]], *, also_allowed: Iterable[str] = ()) -> JobQuery:
    """A ``JobQuery`` from query-string values; ``also_allowed`` names parameters another layer
    reads (``page``). Any other name, a repeated single-valued parameter or a bad value: 400."""
    validation.check_known_params(params, [*PARAMETERS, *also_allowed])
    values = {name: _single(name, params[name]) for name in PARAMETERS if name in params and name != "status"}
    ordering = values.get("ordering", "newest")
    validation.check_text("ordering", ordering)
    if ordering not in ORDERINGS:
        raise InvalidInput("ordering", f"must be one of {', '.join(ORDERINGS)}")
    return JobQuery(
        statuses=_statuses(params["status"]) if "status" in params else (),
        kind=_text("kind", values.get("kind")),
        dependency=_text("dependency", values.get("dependency")),
        id_prefix=id_prefix_parse(values["id_prefix"]) if "id_prefix" in values else None,
        payload_contains=_needle(values["payload_contains"]) if "payload_contains" in values else None,
        created_after=_moment("created_after", values.get("created_after")),
        created_before=_moment("created_before", values.get("created_before")),
        ordering=ordering,
    )


def id_prefix_parse(value: str) -> str:
    """The leading hex digits of a job id (8 to 32, dashes where a UUID has them), lowercased."""
    text = value.strip().lower()
    canonical = len(text) <= 36 and all((c == "-") if i in _DASHES else (c in _HEX) for i, c in enumerate(text))
    if not canonical and not (len(text) <= ID_PREFIX_MAX and set(text) <= _HEX):
        raise InvalidInput(
            "id_prefix",
            f"must be the first {ID_PREFIX_MIN} to {ID_PREFIX_MAX} hex digits of a job id "
            "(dashes allowed where the id has them)",
        )
    digits = text.replace("-", "")
    if not ID_PREFIX_MIN <= len(digits) <= ID_PREFIX_MAX:
        raise InvalidInput("id_prefix", f"must have {ID_PREFIX_MIN} to {ID_PREFIX_MAX} hex digits")
    return digits


def id_prefix_bounds(prefix: str) -> tuple[str, str]:
    """The lowest and highest job ids starting with ``prefix``: a range the unique index answers."""
    pad = ID_PREFIX_MAX - len(prefix)
    return prefix + "0" * pad, prefix + "f" * pad


def _single(name: str, values: Sequence[str]) -> str:
    if len(values) != 1:
        raise InvalidInput(name, "given more than once; give it once")
    return values[0]


def _text(name: str, value: str | None) -> str | None:
    if value:
        validation.check_text(name, value)  # PostgreSQL refuses NUL even in a WHERE clause
    return value or None


def _statuses(values: Sequence[str]) -> tuple[str, ...]:
    """Repeated ``status=`` and comma lists alike; given but empty is an error, as the schema's enum says."""
    wanted: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part not in JobStatus.values:
                raise InvalidInput("status", f"must be one of {', '.join(JobStatus.values)}")
            if part not in wanted:
                wanted.append(part)
    return tuple(wanted)


# A search, not a second payload: each key and element is one condition of the query (SQLite
# refuses an expression tree deeper than 1,000), so a needle is kept small.
NEEDLE_MAX_BYTES = 4096
NEEDLE_MAX_VALUES = 100


def _needle(value: str) -> dict[str, Any]:
    """A small JSON object (at most NEEDLE_MAX_VALUES keys and elements in all)."""
    try:
        needle = jsonio.loads_strict(value, max_bytes=NEEDLE_MAX_BYTES, max_depth=conf.get("MAX_JSON_DEPTH"))
    except jsonio.JSONRejected as exc:
        raise InvalidInput("payload_contains", f"must be a JSON object: {exc}") from None
    if not isinstance(needle, dict):
        raise InvalidInput("payload_contains", f"must be a JSON object, not {type(needle).__name__}: {json.dumps(needle)[:40]}")
    validation.check_json("payload_contains", needle, max_depth=conf.get("MAX_JSON_DEPTH"), max_bytes=NEEDLE_MAX_BYTES)
    _check_values(needle)
    return needle


# SQLite compares numbers as 64-bit integers or doubles; a bigger integer cannot be bound.
_INT_RANGE = (-(2**63), 2**63 - 1)


def _check_values(value: Any) -> None:
    stack, seen = [value], 0
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, int) and not isinstance(node, bool) and not _INT_RANGE[0] <= node <= _INT_RANGE[1]:
            raise InvalidInput("payload_contains", "integers must fit in 64 bits")
        seen += 1
        if seen > NEEDLE_MAX_VALUES + 1:  # the outer object is not a condition
            raise InvalidInput("payload_contains", f"has more than {NEEDLE_MAX_VALUES} keys and elements")


def _moment(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 time with its zone (``Z`` or ``±hh:mm``); a naive time is ambiguous: 400."""
    if value is None:
        return None
    validation.check_text(name, value)
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        hint = " (a '+' in a query string reads as a space: write %2B, or Z for UTC)" if " " in text else ""
        raise InvalidInput(name, f"must be an ISO 8601 time with a zone, e.g. 2026-01-31T12:00:00Z{hint}") from None
    if timezone.is_naive(moment):
        raise InvalidInput(name, "needs a time zone (Z or ±hh:mm): a time without one is ambiguous")
    try:
        # In UTC: PostgreSQL refuses offsets beyond ±15:59 that Python accepts (up to ±23:59).
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise InvalidInput(name, "is out of range") from None
