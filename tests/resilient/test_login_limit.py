"""The login limiter counts a username however it is spelled, as Django's login form reads it."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import override_settings

from resilient import login_limit

pytestmark = pytest.mark.django_db

LOCKED = override_settings(RESILIENT={"LOGIN_MAX_FAILURES": 3, "LOGIN_WINDOW": 60})


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()  # the counts live in the cache, which outlives a test
    yield
    cache.clear()


def login(client, username: str, password: str):
    return client.post("/accounts/login/", {"username": username, "password": password})


@LOCKED
@pytest.mark.parametrize(
    "spelling", ["ｏｐｅｒａｔｏｒ", "OPERATOR", "ＯＰＥＲＡＴＯＲ", " operator "]
)
def test_other_spellings_of_a_locked_username_are_locked_too(client, operator, spelling):
    for _ in range(3):
        assert login(client, "operator", "wrong").status_code == 200
    assert login(client, spelling, "operator-pass-123").status_code == 429


@LOCKED
def test_failures_under_other_spellings_add_up(client, operator):
    for spelling in ("ｏｐｅｒａｔｏｒ", "Operator", "ｏｐｅｒａｔｏｒ"):
        assert login(client, spelling, "wrong").status_code == 200
    assert login(client, "operator", "operator-pass-123").status_code == 429


def test_the_full_width_spelling_signs_in_as_the_user(client, operator):
    """Why the key must be normalised: Django's login form applies NFKC before authenticating."""
    assert login(client, "ｏｐｅｒａｔｏｒ", "operator-pass-123").status_code == 302


def test_the_key_is_nfkc_and_case_folded():
    assert login_limit.username_key("ｂｏｂ") == login_limit.username_key(" BOB ") == "bob"
    assert login_limit.username_key("Straße") == login_limit.username_key("STRASSE")
