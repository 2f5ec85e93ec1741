"""Test settings: the real settings with a throwaway SECRET_KEY when none is given."""

import os

os.environ.setdefault("SECRET_KEY", "insecure-test-only-key")

from resilient.settings import *  # noqa: E402,F403
