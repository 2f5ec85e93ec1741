"""Every raw statement of the breakers, named; the rest of the package goes through the ORM."""

from __future__ import annotations

from django.db.models import DateTimeField

from jobs.models import Breaker

# The columns of a Breaker row, in the order the statements below select them.
BREAKER_FIELDS = Breaker._meta.concrete_fields
BREAKER_ATTNAMES = [f.attname for f in BREAKER_FIELDS]
BREAKER_IS_DATETIME = [isinstance(f, DateTimeField) for f in BREAKER_FIELDS]

# Every breaker row, every column: the claim path's one breaker read (``store.breakers_all``).
BREAKERS_SELECT_ALL = f"SELECT {', '.join(f.column for f in BREAKER_FIELDS)} FROM {Breaker._meta.db_table}"  # noqa: S608 - constants
