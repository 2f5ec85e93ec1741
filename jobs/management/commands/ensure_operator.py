"""``ensure_operator``: make sure the operator account exists and print how to sign in.

Name and password come from RESILIENT_OPERATOR_USERNAME / RESILIENT_OPERATOR_PASSWORD; without a
password, one is generated when the account is created and kept in var/operator_password.

The password is set only when the account is created, or when RESILIENT_OPERATOR_RESET_PASSWORD=1
asks for it: `make run` runs this on every start, and must not undo a change made in the admin.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

RESET_VARIABLE = "RESILIENT_OPERATOR_RESET_PASSWORD"


def _known_password(password_file: Path) -> str:
    """The password this command would set: from the environment, else the kept file ('' if none)."""
    password = os.environ.get("RESILIENT_OPERATOR_PASSWORD", "")
    if not password and password_file.exists():
        password = password_file.read_text().strip()
    return password


def _generate(password_file: Path) -> str:
    password = secrets.token_urlsafe(12)
    # Created with mode 600 (not chmod after writing): never readable by others, even briefly.
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


class Command(BaseCommand):
    help = "Create the operator superuser if missing; print its name, password and API token."

    def handle(self, *args, **options):
        username = os.environ.get("RESILIENT_OPERATOR_USERNAME", "operator")
        password_file = settings.VAR_DIR / "operator_password"
        password = _known_password(password_file)
        reset = os.environ.get(RESET_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None or reset:
            password = password or _generate(password_file)
            if user is None:
                user = User.objects.create_superuser(username=username, password=password, email="")
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
            shown = password
        elif password and user.check_password(password):
            shown = password
        elif password:
            shown = f"(changed elsewhere since it was set here; {RESET_VARIABLE}=1 sets it back)"
        else:
            shown = f"(not known here; {RESET_VARIABLE}=1 sets a new one)"
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(
            f"Operator account: {username}\n"
            f"  password:  {shown}\n"
            f"  API token: {token.key}   (Authorization: Token {token.key})\n"
        )
