from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings

from tests.jobs.breakers.svc import CONFIG
from tests.support.downstream import Downstream


@pytest.fixture
def svc_config():
    """The ``svc`` and ``other`` dependencies of ``tests.jobs.breakers.svc``."""
    with override_settings(RESILIENT=CONFIG):
        yield


@pytest.fixture
def stub() -> Iterator[Downstream]:
    """A real HTTP downstream on 127.0.0.1 (healthy until told otherwise)."""
    with Downstream() as server:
        yield server
