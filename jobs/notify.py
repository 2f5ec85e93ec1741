"""Side effects that leave after commit: worker wake-ups (and, later, dashboard broadcasts).

Only services call these. Messages are hints; the database is the truth, so a lost or refused
message costs at most one poll interval.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.db import transaction

JOBS_CHANNEL = "jobs"
WAKE = {"type": "jobs.wake"}

log = logging.getLogger(__name__)


def _send_wake() -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.send)(JOBS_CHANNEL, WAKE)
    except ChannelFull:
        pass  # enough wake-ups are already waiting
    except Exception:  # a broken channel layer must not break a committed submission
        log.warning("could not send worker wake-up", exc_info=True)


def wake_workers_on_commit() -> None:
    """After the current transaction commits, wake one idle worker."""
    transaction.on_commit(_send_wake)
