"""Test settings: the real settings with a throwaway SECRET_KEY when none is given."""

import os

os.environ.setdefault("SECRET_KEY", "insecure-test-only-key")

from resilient.settings import *  # noqa: E402,F403

# Fast hashing: login tests post many passwords (PBKDF2 costs ~1 s each on a busy CI core).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
