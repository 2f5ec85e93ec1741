"""Moved to ``jobs.breakers.storage``; this path stays for the callers that import it."""

from jobs.breakers.storage import FAR_FUTURE, BreakerRowStorage, pybreaker_for  # noqa: F401
