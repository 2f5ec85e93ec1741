"""Test settings: the real settings with a throwaway SECRET_KEY when none is given."""

import os

os.environ.setdefault("SECRET_KEY", "insecure-test-only-key")

from resilient.settings import *  # noqa: E402,F403

# Fixtures create users with passwords: PBKDF2's 1M iterations cost ~1 s each on this machine.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
