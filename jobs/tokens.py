"""API tokens: a user obtains, rotates and revokes their own (DRF authtoken, one per user)."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from rest_framework.authtoken.models import Token


@transaction.atomic
def token_rotate(*, user: AbstractBaseUser) -> Token:
    """Give ``user`` a new token; the previous one, if any, stops working at once."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)


@transaction.atomic
def token_revoke(*, user: AbstractBaseUser) -> bool:
    """Delete ``user``'s token; True if there was one. Revoking twice is harmless."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return deleted > 0
