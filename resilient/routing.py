"""The protocol router: one place that says which consumer serves which protocol."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter

from dashboard.routing import websocket_urlpatterns
from jobs.notify import JOBS_CHANNEL
from jobs.worker.consumer import JobWakeConsumer
from resilient.origin import OriginValidator


def build_application(http_app):
    return ProtocolTypeRouter(
        {
            "http": http_app,
            # The full origin, not just the host name (resilient.origin says why).
            "websocket": OriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
            "channel": ChannelNameRouter({JOBS_CHANNEL: JobWakeConsumer.as_asgi()}),
        }
    )
