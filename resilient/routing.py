"""The protocol router: one place that says which consumer serves which protocol."""

from __future__ import annotations

from channels.routing import ProtocolTypeRouter


def build_application(http_app):
    return ProtocolTypeRouter({"http": http_app})
