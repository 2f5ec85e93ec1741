"""``resilient.settings`` plus the minimal create endpoint of ``bench.minimal_api``."""

from resilient.settings import *  # noqa: F403

ROOT_URLCONF = "bench.minimal_api"
