"""Which header values are hidden when a payload is shown."""

from __future__ import annotations

import pytest

from jobs.redaction import REDACTED, header_is_secret, payload_redacted


@pytest.mark.parametrize("name", ["Authorization", "authorization", "Proxy-Authorization", "Cookie", "Set-Cookie",
                                  "X-Api-Key", "Api-Key", "X-Auth-Token", "X-CSRF-Token", "Token", "X-Secret",
                                  "X-Session", "X-Password", "X_Access_Token", " Authorization ", "X-Apikey",
                                  "apikey", "X-CSRFToken", "X-XSRFToken"])
def test_secret_looking_names(name):
    assert header_is_secret(name)


@pytest.mark.parametrize("name", ["Accept", "Content-Type", "X-Request-Id", "Keyboard", "X-Monkey", "User-Agent"])
def test_ordinary_names(name):
    assert not header_is_secret(name)


def test_only_the_values_of_secret_headers_change_and_the_original_is_untouched():
    payload = {"url": "u", "headers": {"Authorization": "Bearer x", "Accept": "a"}, "json": {"token": "kept"}}
    shown = payload_redacted(payload)
    assert shown == {"url": "u", "headers": {"Authorization": REDACTED, "Accept": "a"}, "json": {"token": "kept"}}
    assert payload["headers"]["Authorization"] == "Bearer x"


@pytest.mark.parametrize("payload", [None, {}, {"headers": "not an object"}, {"headers": {"Accept": "a"}}, [1]])
def test_anything_else_is_returned_as_it_is(payload):
    assert payload_redacted(payload) is payload
