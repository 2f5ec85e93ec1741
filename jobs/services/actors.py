"""Who an audit line names: a user, or the system."""

from __future__ import annotations

from typing import Any

from jobs.models import ACTOR_MAX_LENGTH

SYSTEM = "system"


def actor_name(user: Any) -> str:
    """How a user appears in the audit trail (bounded: the actor columns have a length)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return SYSTEM
    return f"user:{user.get_username()}"[:ACTOR_MAX_LENGTH]


def actor_resolve(*, user: Any, actor: str | None) -> str:
    """The actor given explicitly (the worker, a command), else the user's name."""
    return actor if actor is not None else actor_name(user)
