"""Wake-ups are hints: a full or broken channel layer never breaks a submission."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import override_settings

from jobs import services
from jobs.models import Job
from jobs.notify import JOBS_CHANNEL

pytestmark = pytest.mark.django_db(transaction=True)

TINY_LAYER = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 2}}}
BROKEN_LAYER = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [("127.0.0.1", 1)]}}}


@override_settings(CHANNEL_LAYERS=TINY_LAYER)
def test_a_full_jobs_channel_is_harmless():
    layer = get_channel_layer()
    for _ in range(2):
        async_to_sync(layer.send)(JOBS_CHANNEL, {"type": "jobs.wake"})
    job, created = services.job_submit(kind="noop")  # the wake-up hits ChannelFull
    assert created and Job.objects.filter(seq=job.seq).exists()


@override_settings(CHANNEL_LAYERS=BROKEN_LAYER)
def test_an_unreachable_channel_layer_does_not_fail_the_submission(caplog):
    job, created = services.job_submit(kind="noop")
    assert created and Job.objects.filter(seq=job.seq).exists()
    assert "could not send worker wake-up" in caplog.text
