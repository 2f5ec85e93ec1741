"""Every raw statement of the breakers, named; the rest of the package goes through the ORM."""

from __future__ import annotations

from django.db.models import DateTimeField, JSONField

from jobs.dialect import Dialect
from jobs.models import Breaker

# The columns of a Breaker row, in the order the statements below select them.
BREAKER_FIELDS = Breaker._meta.concrete_fields
BREAKER_ATTNAMES = [f.attname for f in BREAKER_FIELDS]
BREAKER_IS_DATETIME = [isinstance(f, DateTimeField) for f in BREAKER_FIELDS]
BREAKER_IS_JSON = [isinstance(f, JSONField) for f in BREAKER_FIELDS]

# Every breaker row, every column: the claim path's one breaker read (``store.breakers_all``).
BREAKERS_SELECT_ALL = f"SELECT {', '.join(f.column for f in BREAKER_FIELDS)} FROM {Breaker._meta.db_table}"  # noqa: S608 - constants


def breakers_lock(dialect: Dialect, *, count: int) -> str:
    """The rows of ``count`` named breakers, locked for the claim's transaction, skipping rows
    another claim holds (PostgreSQL; SQLite's IMMEDIATE transaction already serialises claims).

    Parameters: the names. Flow control counts a dependency's calls in flight and takes its
    rate-limit slot under this lock, so two workers never both spend the last free slot."""
    return (
        f"{BREAKERS_SELECT_ALL} WHERE name IN ({', '.join(['%s'] * count)})"
        f"{dialect.lock_clause(skip_locked=True)}"
    )


# Take the rate limit's next slot (GCRA): the theoretical arrival time moves one interval on,
# only if it has not passed ``now`` (a concurrent claim that took it first makes this miss).
# Parameters: the new time, the name, now (epoch seconds).
RATE_TAKE = (
    f"UPDATE {Breaker._meta.db_table} SET rate_tat = %s WHERE name = %s "  # noqa: S608 - constants
    "AND (rate_tat IS NULL OR rate_tat <= %s)"
)
