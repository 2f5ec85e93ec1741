"""Rate limit on the login forms (``/accounts/login/`` and the admin's).

Failed attempts are counted in Django's cache per (client address, username) and per client
address; past the limit the form answers 429 until the window ends, whatever the password. A
successful login clears the (address, username) count. The cache must be shared by every web
process (Redis when ``REDIS_URL`` is set), or each process counts alone.

Chosen over django-axes: ~60 lines on the cache cover both forms with no extra tables,
migrations or authentication backend. Behind a proxy, REMOTE_ADDR must be the client's address
(the proxy sets it, e.g. Daphne's ``--proxy-headers``).
"""

from __future__ import annotations

import hashlib

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import cache
from django.http import HttpResponse
from django.urls import NoReverseMatch, reverse

from jobs import conf

# One address may try this many times more usernames than one username may be tried.
ADDRESS_FACTOR = 5


def _login_paths() -> set[str]:
    paths = set()
    for name in ("login", "admin:login"):
        try:
            paths.add(reverse(name))
        except NoReverseMatch:
            pass
    return paths


def username_key(username: str) -> str:
    """The username as the login form reads it (NFKC, stripped), case-folded: one count per user."""
    # Django's login form applies NFKC before authenticating, so "ｂｏｂ" signs in as "bob": count
    # them together. Case-folding over-counts ("Bob" is another account) and errs the safe way.
    normalize = AbstractBaseUser.normalize_username
    return normalize(normalize(username.strip()).casefold())


def _keys(request) -> tuple[str, str]:
    address = request.META.get("REMOTE_ADDR", "")
    username = username_key(str(request.POST.get("username", "")))
    digest = hashlib.sha256(f"{address}|{username}".encode()).hexdigest()[:32]
    return f"login-failures:user:{digest}", f"login-failures:addr:{address}"


class LoginRateLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST" or request.path not in _login_paths():
            return self.get_response(request)
        limit, window = conf.get("LOGIN_MAX_FAILURES"), conf.get("LOGIN_WINDOW")
        user_key, address_key = _keys(request)
        failures = cache.get_many([user_key, address_key])
        if failures.get(user_key, 0) >= limit or failures.get(address_key, 0) >= limit * ADDRESS_FACTOR:
            response = HttpResponse(
                f"Too many failed login attempts. Try again in {window} seconds.\n",
                status=429,
                content_type="text/plain; charset=utf-8",
            )
            response["Retry-After"] = str(window)
            return response
        response = self.get_response(request)
        if getattr(request, "user", None) is not None and request.user.is_authenticated and response.status_code in (301, 302, 303):
            cache.delete(user_key)
        elif response.status_code == 200:  # the form came back: the credentials were refused
            for key in (user_key, address_key):
                cache.add(key, 0, timeout=window)  # the window starts at the first failure
                try:
                    cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.set(key, 1, timeout=window)
        return response
