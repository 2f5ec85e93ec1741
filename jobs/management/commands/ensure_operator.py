"""``ensure_operator``: make sure the operator account exists and print how to sign in.

Name and password come from RESILIENT_OPERATOR_USERNAME / RESILIENT_OPERATOR_PASSWORD; without a
password, one is generated once and kept in var/operator_password.
"""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create the operator superuser if missing; print its name, password and API token."

    def handle(self, *args, **options):
        username = os.environ.get("RESILIENT_OPERATOR_USERNAME", "operator")
        password = os.environ.get("RESILIENT_OPERATOR_PASSWORD", "")
        password_file = settings.VAR_DIR / "operator_password"
        if not password:
            if password_file.exists():
                password = password_file.read_text().strip()
            else:
                password = secrets.token_urlsafe(12)
                password_file.write_text(password + "\n")
                password_file.chmod(0o600)
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_superuser(username=username, password=password, email="")
        elif not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(
            f"Operator account: {username}\n"
            f"  password:  {password}\n"
            f"  API token: {token.key}   (Authorization: Token {token.key})\n"
        )
