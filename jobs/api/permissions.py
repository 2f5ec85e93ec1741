"""Per-action operator permissions: staff plus the Django permission for that action."""

from __future__ import annotations

from rest_framework.permissions import BasePermission


def operator(permission: str) -> type[BasePermission]:
    """A permission class admitting staff users who hold ``permission`` (superusers hold all)."""

    class OperatorPermission(BasePermission):
        message = f"needs a staff account with the {permission!r} permission"

        def has_permission(self, request, view) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.is_staff and user.has_perm(permission))

    OperatorPermission.__name__ = f"Operator[{permission}]"
    return OperatorPermission
