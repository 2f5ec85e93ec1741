"""The domain's one exception hierarchy. ``jobs.errors`` describes it to clients (HTTP and socket)."""

from __future__ import annotations


class ResilientError(Exception):
    """Base of every domain error."""

    status_code = 400
    default_code = "error"


class InvalidInput(ResilientError):
    """Client input that breaks a domain rule; names the offending field."""

    status_code = 400
    default_code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidItems(InvalidInput):
    """Some items of a list are bad: ``errors`` maps each bad item's index to its field errors."""

    def __init__(self, field: str, errors: dict[str, dict[str, list[str]]]) -> None:
        first = next(iter(errors))
        [(item_field, [message])] = list(errors[first].items())[:1]
        more = f" (and {len(errors) - 1} more bad items)" if len(errors) > 1 else ""
        super().__init__(field, f"item {first}: {item_field}: {message}{more}")
        self.errors = errors


class JobNotFound(ResilientError):
    status_code = 404
    default_code = "not_found"


class IllegalTransition(ResilientError):
    """The job's current status does not allow the requested action."""

    status_code = 409
    default_code = "illegal_transition"

    def __init__(self, *, action: str, status: str, allowed: tuple[str, ...]) -> None:
        allowed_text = " or ".join(allowed)
        super().__init__(f"cannot {action} a job that is {status}; it must be {allowed_text}")
        self.action = action
        self.status = status


class Forbidden(ResilientError):
    """The caller may not do this (a permission is missing); says which."""

    status_code = 403
    default_code = "permission_denied"


class IdempotencyConflict(ResilientError):
    """The idempotency key was used before for a request with other parameters."""

    status_code = 409
    default_code = "idempotency_conflict"


class TooManyPending(ResilientError):
    """The submitter already has as many pending jobs as the cap allows."""

    status_code = 429
    default_code = "too_many_pending"


class BreakerNotFound(ResilientError):
    status_code = 404
    default_code = "not_found"


class CircuitOpen(ResilientError):
    """The dependency's breaker rejects calls now (open, half-open with a trial running, forced open)."""

    status_code = 503
    default_code = "CIRCUIT_OPEN"

    def __init__(self, *, dependency: str, state: str, retry_at: str | None = None) -> None:
        when = f"; retry at {retry_at}" if retry_at else ""
        super().__init__(f"the circuit breaker for {dependency!r} is {state}{when}")
        self.dependency = dependency
        self.state = state
        self.retry_at = retry_at
        self.held_since = None  # when the breaker stopped admitting (a datetime), if known


class ValidationFailed(ResilientError):
    """The submission-time validation call failed (error, timeout or refusal): nothing was stored."""

    status_code = 502
    default_code = "VALIDATION_ERROR"


# --- Raised by handlers, read by the worker -----------------------------------------------------


class JobFailure(Exception):
    """A handler's attempt failed. Retryable unless ``PermanentJobFailure``."""

    retryable = True
    counts_against_dependency = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DependencyFailure(JobFailure):
    """The downstream failed (5xx, timeout, connection error): retry, and the breaker counts it."""


class PermanentJobFailure(JobFailure):
    """The job itself is wrong (e.g. a 4xx answer): fail at once, never retry, not counted."""

    retryable = False
    counts_against_dependency = False


def error_text(error: BaseException) -> str:
    """How a failed call is recorded: a ``JobFailure``'s own message, else type and message."""
    return str(error) if isinstance(error, JobFailure) else f"{type(error).__name__}: {error}"
