"""Refuse NUL and lone surrogates in an admin request's path or query string with a 400.

PostgreSQL rejects NUL in a text parameter, so a changelist search or filter (``?q=%00``,
``?kind=a%00b``), a text lookup or a text primary key in the path would answer 500. One check
in front of the whole admin site covers every ModelAdmin, ours and Django's (users, groups,
tokens), and every filter added later, where per-filter patches would each need remembering.
Nothing an operator types legitimately contains these characters. Form posts are left to the
forms, whose fields already refuse NUL with a message on the page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.core.exceptions import BadRequest
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

# NUL, and UTF-16 surrogates (never valid on their own in text; PostgreSQL cannot store them).
FORBIDDEN = re.compile("[\x00\ud800-\udfff]")


def _admin_prefix() -> str | None:
    try:
        return reverse("admin:index")
    except NoReverseMatch:
        return None


def _texts(request: HttpRequest) -> Iterable[str]:
    yield request.path
    for key, values in request.GET.lists():
        yield key
        yield from values


def has_forbidden_characters(request: HttpRequest) -> bool:
    """True if the path or a query parameter holds NUL or a lone surrogate."""
    return any(FORBIDDEN.search(text) for text in _texts(request))


class AdminInputMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        prefix = _admin_prefix()
        if prefix and request.path.startswith(prefix) and has_forbidden_characters(request):
            raise BadRequest("NUL or a lone surrogate in an admin request")
        return self.get_response(request)
