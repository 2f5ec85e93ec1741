"""Dependencies from settings and RESILIENT_DEPENDENCIES: merged, type-checked, secrets kept out of sight."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from jobs import dependencies

ENV = dependencies.ENV_DEPENDENCIES


def declare(monkeypatch, value) -> None:
    monkeypatch.setenv(ENV, value if isinstance(value, str) else json.dumps(value))


def test_the_environment_declares_dependencies_with_headers(monkeypatch):
    declare(monkeypatch, {"billing": {"base_url": "http://billing.internal/api/", "read_timeout": 2,
                                      "headers": {"Authorization": "Bearer s3cret"}}})
    billing = dependencies.configured()["billing"]
    assert billing.base_url == "http://billing.internal/api/" and billing.read_timeout == 2
    assert billing.headers == (("Authorization", "Bearer s3cret"),)
    assert "s3cret" not in repr(billing)


@override_settings(RESILIENT={"DEPENDENCIES": {"billing": {"base_url": "http://a.internal/", "failure_threshold": 7,
                                                           "headers": {"X-From": "settings"}}}})
def test_the_environment_wins_over_settings_option_by_option(monkeypatch):
    assert dependencies.configured()["billing"].headers == (("X-From", "settings"),)
    declare(monkeypatch, {"billing": {"base_url": "http://b.internal/", "headers": {"X-From": "env"}},
                          "default": {"read_timeout": 1.5}})
    deps = dependencies.configured()
    assert deps["billing"].base_url == "http://b.internal/" and deps["billing"].failure_threshold == 7
    assert deps["billing"].headers == (("X-From", "env"),)
    assert deps["default"].read_timeout == 1.5 and deps["local"].headers == ()


def test_an_empty_variable_declares_nothing(monkeypatch):
    declare(monkeypatch, "  ")
    assert set(dependencies.configured()) == {"local", "default", "validation"}


@pytest.mark.parametrize(("value", "says"), [
    ("{not json", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ({"billing": []}, "'billing': options must be an object"),
    ({"": {}}, "non-empty string"),
    ({"billing": {"timeout": 1}}, "'billing': unknown options ['timeout']"),
    ({"billing": {"base_url": 5}}, "'billing': base_url must be a string"),
    ({"billing": {"base_url": "http://user:pw@billing.internal/"}}, "'billing': base_url: url must not carry userinfo"),
    ({"billing": {"base_url": "ftp://billing.internal/"}}, "'billing': base_url: url must be an absolute http"),
    ({"billing": {"read_timeout": "2"}}, "'billing': read_timeout must be a number"),
    ({"billing": {"connect_timeout": 0}}, "'billing': connect_timeout must be a number of seconds above 0"),
    ({"billing": {"failure_threshold": 1.5}}, "'billing': failure_threshold must be a whole number"),
    ({"billing": {"failure_threshold": True}}, "'billing': failure_threshold must be a whole number"),
    ({"billing": {"reset_timeout": -1}}, "'billing': reset_timeout must be"),
    ({"billing": {"headers": "Authorization: x"}}, "'billing': headers must be an object"),
    ({"billing": {"headers": {"Authorization": 5}}}, "'billing': headers: 'Authorization' must have a string value"),
    ({"billing": {"headers": {"X-A": "ok\r\nX-Evil: 1"}}}, "'billing': headers: 'X-A' must be printable ASCII"),
    ({"billing": {"headers": {"Bad Name": "x"}}}, "'billing': headers: 'Bad Name' is not a header name"),
    ({"billing": {"headers": {"X-A": "1", "x-a": "2"}}}, "'billing': headers names the same header twice"),
])
def test_a_bad_declaration_names_the_dependency_and_the_key(monkeypatch, value, says):
    declare(monkeypatch, value)
    with pytest.raises(ImproperlyConfigured) as error:
        dependencies.configured()
    assert ENV in str(error.value) and says in str(error.value)
    assert "ok\r\n" not in str(error.value)


@override_settings(RESILIENT={"DEPENDENCIES": {"billing": {"headers": {"X-A": "line\nbreak"}}}})
def test_settings_are_checked_the_same_way():
    with pytest.raises(ImproperlyConfigured, match=r"DEPENDENCIES.*'billing': headers: 'X-A'"):
        dependencies.configured()


def test_a_base_url_with_userinfo_from_the_old_variables_is_refused(monkeypatch):
    monkeypatch.setenv("RESILIENT_DEFAULT_BASE_URL", "http://user:pw@127.0.0.1/")
    with pytest.raises(ImproperlyConfigured, match="RESILIENT_DEFAULT_BASE_URL.*userinfo") as error:
        dependencies.configured()
    assert "pw" not in str(error.value)


def test_a_bad_configuration_stops_a_process_at_start_up():
    """Every process (web, worker, manage.py) refuses to start, naming the dependency and key."""
    from tests.support.processes import ROOT

    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(SECRET_KEY="start-up-check", DJANGO_SETTINGS_MODULE="resilient.settings",
               RESILIENT_DEPENDENCIES='{"billing": {"max_concurency": 4}}')
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "dependency 'billing'" in done.stderr and "max_concurency" in done.stderr


def test_flow_control_options_are_parsed(monkeypatch):
    declare(monkeypatch, {"billing": {"base_url": "http://billing.internal/", "max_concurrency": 4,
                                      "rate_limit": "50/s"},
                          "search": {"rate_limit": "120/m", "concurrency": {"mode": "adaptive", "min": 2, "max": 9}},
                          "batch": {"rate_limit": "7/h", "concurrency": {"mode": "adaptive"}}})
    deps = dependencies.configured()
    billing, search, batch = deps["billing"], deps["search"], deps["batch"]
    assert billing.max_concurrency == 4 and billing.rate_limit == dependencies.Rate(50, 1.0)
    assert billing.rate_limit.interval == pytest.approx(0.02) and str(billing.rate_limit) == "50/s"
    assert search.rate_limit == dependencies.Rate(120, 60.0) and search.concurrency == dependencies.Adaptive(2, 9)
    assert batch.rate_limit.interval == pytest.approx(3600 / 7) and batch.concurrency == dependencies.Adaptive(1, 64)
    assert deps["local"].max_concurrency is None and deps["local"].rate_limit is None
    assert deps["local"].concurrency is None


@override_settings(RESILIENT={"DEPENDENCIES": {"billing": {"max_concurrency": 3, "rate_limit": "5/s"}}})
def test_flow_control_merges_option_by_option_and_null_lifts_a_limit(monkeypatch):
    declare(monkeypatch, {"billing": {"rate_limit": None}})
    billing = dependencies.configured()["billing"]
    assert billing.max_concurrency == 3 and billing.rate_limit is None


@pytest.mark.parametrize(("options", "says"), [
    ({"max_concurrency": 0}, "max_concurrency must be a whole number from 1"),
    ({"max_concurrency": 2.5}, "max_concurrency must be a whole number from 1"),
    ({"max_concurrency": True}, "max_concurrency must be a whole number from 1"),
    ({"max_concurrency": "4"}, "max_concurrency must be a whole number from 1"),
    ({"max_concurrency": 10**9}, "max_concurrency must be a whole number from 1 to 100000"),
    ({"rate_limit": 5}, 'rate_limit must be a string "N/s", "N/m" or "N/h"'),
    ({"rate_limit": "5/d"}, "rate_limit must be a string"),
    ({"rate_limit": "0/s"}, "rate_limit must be a string"),
    ({"rate_limit": "5 per second"}, "rate_limit must be a string"),
    ({"rate_limit": "-5/s"}, "rate_limit must be a string"),
    ({"concurrency": "adaptive"}, "concurrency must be an object"),
    ({"concurrency": {"mode": "static"}}, 'concurrency mode must be "adaptive"'),
    ({"concurrency": {"mode": "adaptive", "step": 2}}, "concurrency unknown keys ['step']"),
    ({"concurrency": {"mode": "adaptive", "min": 0}}, "concurrency min must be a whole number from 1"),
    ({"concurrency": {"mode": "adaptive", "max": "9"}}, "concurrency max must be a whole number from 1"),
    ({"concurrency": {"mode": "adaptive", "min": 5, "max": 2}}, "concurrency min must not be above max"),
])
def test_a_bad_flow_control_option_names_the_dependency_and_the_key(monkeypatch, options, says):
    declare(monkeypatch, {"billing": options})
    with pytest.raises(ImproperlyConfigured) as error:
        dependencies.configured()
    assert ENV in str(error.value) and "'billing'" in str(error.value) and says in str(error.value)
