"""A cheap password hasher for tests: same algorithm and hash format as Django's default, far
fewer iterations. The iteration count is stored in each hash, so a server subprocess running
the real settings still verifies passwords set in a test."""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1000
