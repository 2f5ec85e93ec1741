from __future__ import annotations

import pytest
from django.test import override_settings

from tests.jobs.breakers.svc import CONFIG


@pytest.fixture
def svc_config():
    """The ``svc`` and ``other`` dependencies of ``tests.jobs.breakers.svc``."""
    with override_settings(RESILIENT=CONFIG):
        yield
