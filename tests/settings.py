"""Test settings: the real settings with a throwaway SECRET_KEY when none is given."""

import os

os.environ.setdefault("SECRET_KEY", "insecure-test-only-key")

from resilient.settings import *  # noqa: E402,F403

# Connections opened by async tests in asgiref's worker threads must not outlive the test: a
# persistent one keeps PostgreSQL from dropping the test database at teardown.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405

# Django's default 1,000,000 PBKDF2 iterations cost ~1.5 s per created user on this machine.
PASSWORD_HASHERS = ["tests.support.hashers.FastPBKDF2PasswordHasher"]
