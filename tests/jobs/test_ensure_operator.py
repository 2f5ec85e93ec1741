"""``ensure_operator`` creates the operator once and never silently undoes a password change."""

from __future__ import annotations

import io
import os
import stat

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def var_dir(tmp_path, settings, monkeypatch):
    settings.VAR_DIR = tmp_path
    for name in (
        "RESILIENT_OPERATOR_USERNAME",
        "RESILIENT_OPERATOR_PASSWORD",
        "RESILIENT_OPERATOR_RESET_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def run() -> str:
    out = io.StringIO()
    call_command("ensure_operator", stdout=out)
    return out.getvalue()


def operator():
    return get_user_model().objects.get(username="operator")


def test_first_run_creates_the_operator_with_a_generated_password_kept_private(var_dir):
    output = run()
    password = (var_dir / "operator_password").read_text().strip()
    assert stat.S_IMODE(os.stat(var_dir / "operator_password").st_mode) == 0o600
    assert f"password:  {password}" in output
    assert operator().check_password(password) and operator().is_superuser


def test_a_password_changed_elsewhere_is_kept_and_not_misreported(var_dir):
    run()
    old = (var_dir / "operator_password").read_text().strip()
    user = operator()
    user.set_password("changed-in-admin-42")
    user.save()
    output = run()
    assert operator().check_password("changed-in-admin-42")  # `make run` no longer undoes it
    assert old not in output  # a password that no longer works is not printed
    assert "changed elsewhere" in output
    assert "RESILIENT_OPERATOR_RESET_PASSWORD=1" in output


def test_an_unchanged_password_is_printed_on_later_runs(var_dir):
    run()
    password = (var_dir / "operator_password").read_text().strip()
    assert f"password:  {password}" in run()


def test_the_environment_can_ask_for_a_reset(var_dir, monkeypatch):
    run()
    password = (var_dir / "operator_password").read_text().strip()
    user = operator()
    user.set_password("changed-in-admin-42")
    user.save()
    monkeypatch.setenv("RESILIENT_OPERATOR_RESET_PASSWORD", "1")
    output = run()
    assert operator().check_password(password)
    assert f"password:  {password}" in output


def test_a_password_from_the_environment_is_used_at_creation_only(var_dir, monkeypatch):
    monkeypatch.setenv("RESILIENT_OPERATOR_PASSWORD", "from-the-env-1")
    run()
    assert operator().check_password("from-the-env-1")
    assert not (var_dir / "operator_password").exists()
    monkeypatch.setenv("RESILIENT_OPERATOR_PASSWORD", "another-value-2")
    output = run()
    assert operator().check_password("from-the-env-1")
    assert "another-value-2" not in output and "changed elsewhere" in output


def test_an_existing_account_without_a_known_password_gets_no_new_one(var_dir):
    get_user_model().objects.create_superuser("operator", password="set-by-hand-7", email="")
    output = run()
    assert operator().check_password("set-by-hand-7")
    assert not (var_dir / "operator_password").exists()
    assert "set-by-hand-7" not in output


def test_the_api_token_stays_the_same_across_runs(var_dir):
    first, second = run(), run()
    token = [line for line in first.splitlines() if "API token" in line]
    assert token and token[0] in second
