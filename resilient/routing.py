"""The protocol router: one place that says which consumer serves which protocol."""

from __future__ import annotations

from channels.routing import ChannelNameRouter, ProtocolTypeRouter

from jobs.consumers import JobWakeConsumer
from jobs.notify import JOBS_CHANNEL


def build_application(http_app):
    return ProtocolTypeRouter(
        {
            "http": http_app,
            "channel": ChannelNameRouter({JOBS_CHANNEL: JobWakeConsumer.as_asgi()}),
        }
    )
