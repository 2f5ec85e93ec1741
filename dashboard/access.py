"""Who may use the operator dashboard: one rule for the page, the socket's handshake and every
command on an open socket, decided from the database each time (sync code)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.core.exceptions import ValidationError
from django.utils.crypto import constant_time_compare

VIEW_PERMISSION = "jobs.view_all_jobs"


@dataclass(frozen=True)
class Refusal:
    """Why an open socket is refused: the reply's ``code`` and the websocket close code."""

    code: str
    close_code: int
    message: str


# Close codes 4000-4999 are the application's own (RFC 6455 §7.4.2).
SESSION_ENDED = Refusal("session_ended", 4001, "your session has ended (signed out, password changed or account disabled); sign in again")
FORBIDDEN = Refusal("forbidden", 4003, "this account may no longer use the dashboard")


def dashboard_allowed(user: Any) -> bool:
    """Active staff holding ``jobs.view_all_jobs`` (superusers hold every permission)."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(VIEW_PERMISSION)
    )


def session_user(session_key: str | None, *, user_id: Any) -> Any | None:
    """A fresh instance of the user the session ``session_key`` still signs in, if it is
    ``user_id``; else None. The checks of ``django.contrib.auth.get_user`` (session exists,
    backend configured, user active, session hash matches the password), but read-only: that
    one flushes or rotates the session, which would sign the operator's browser out too."""
    if not session_key or user_id is None:
        return None
    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    try:
        stored_id = get_user_model()._meta.pk.to_python(data[SESSION_KEY])
        backend_path = data[BACKEND_SESSION_KEY]
    except (KeyError, ValidationError):
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS or str(stored_id) != str(user_id):
        return None
    user = load_backend(backend_path).get_user(stored_id)  # None when inactive (ModelBackend)
    session_hash = data.get(HASH_SESSION_KEY)
    if user is None or not session_hash:
        return None
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return user if any(constant_time_compare(session_hash, h) for h in hashes) else None


def operator(session_key: str | None, *, user_id: Any) -> tuple[Any | None, Refusal | None]:
    """The socket's user afresh and, if it may no longer use the dashboard, why not."""
    user = session_user(session_key, user_id=user_id)
    if user is None:
        return None, SESSION_ENDED
    if not dashboard_allowed(user):
        return user, FORBIDDEN
    return user, None
