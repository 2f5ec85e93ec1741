"""Users rotate and revoke their own API token; a revoked token answers 401 at once."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

URL = "/api/auth/token/"


def with_token(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def alice():
    user = get_user_model().objects.create_user("alice", password="alice-pass-123")
    return user, Token.objects.create(user=user).key


@pytest.fixture
def bob():
    user = get_user_model().objects.create_user("bob", password="bob-pass-123")
    return user, Token.objects.create(user=user).key


def test_a_user_revokes_their_token_and_it_then_answers_401(alice, bob):
    _, key = alice
    _, bob_key = bob
    assert with_token(key).get("/api/jobs/").status_code == 200
    assert with_token(key).delete(URL).status_code == 204
    refused = with_token(key).get("/api/jobs/")
    assert refused.status_code == 401 and refused.json()["code"] == "authentication_failed"
    assert not Token.objects.filter(key=key).exists()
    assert with_token(bob_key).get("/api/jobs/").status_code == 200  # other users keep theirs


def test_rotating_gives_a_new_key_and_the_old_one_stops_working(alice):
    user, old = alice
    response = with_token(old).post(URL)
    assert response.status_code == 201
    new = response.json()["token"]
    assert new != old and Token.objects.get(user=user).key == new
    assert with_token(old).get("/api/jobs/").status_code == 401
    assert with_token(new).get("/api/jobs/").status_code == 200


def test_a_signed_in_user_without_a_token_obtains_one_over_the_session(alice):
    user, _ = alice
    Token.objects.filter(user=user).delete()
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(user)
    assert session.post(URL).status_code == 403  # a session write needs the CSRF token
    session.get("/accounts/login/")  # a page that sets the CSRF cookie, as a browser gets it
    response = session.post(URL, HTTP_X_CSRFTOKEN=session.cookies["csrftoken"].value)
    assert response.status_code == 201
    assert with_token(response.json()["token"]).get("/api/jobs/").status_code == 200


def test_revoking_without_a_token_is_harmless(alice):
    user, _ = alice
    with_token(alice[1]).delete(URL)
    client = APIClient()
    client.force_authenticate(user)
    assert client.delete(URL).status_code == 204


def test_anonymous_callers_get_401(client):
    assert APIClient().post(URL).status_code == 401
    assert APIClient().delete(URL).status_code == 401
    assert (
        APIClient().post(URL, HTTP_AUTHORIZATION="Basic YWxpY2U6YWxpY2UtcGFzcy0xMjM=").status_code
        == 401
    )


def test_an_admin_deletes_a_token_and_it_then_answers_401(client, operator, alice):
    _, key = alice
    client.force_login(operator)
    page = client.get(f"/admin/authtoken/tokenproxy/{alice[0].pk}/delete/")
    assert page.status_code == 200
    assert (
        client.post(
            f"/admin/authtoken/tokenproxy/{alice[0].pk}/delete/", {"post": "yes"}
        ).status_code
        == 302
    )
    assert with_token(key).get("/api/jobs/").status_code == 401


def test_the_endpoint_is_in_the_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operations = schema["paths"]["/api/auth/token/"]
    assert set(operations) >= {"post", "delete"}
    assert "201" in operations["post"]["responses"] and "204" in operations["delete"]["responses"]
