"""The read-only base of every jobs admin: changes go through the service layer, never a form."""

from __future__ import annotations


class ReadOnly:
    """Admin (or inline) that shows but never adds, edits or deletes: every change goes through
    the service layer (actions), so it is audited and shows up live on the dashboard."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
