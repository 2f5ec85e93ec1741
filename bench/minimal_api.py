"""A minimal DRF create endpoint on the same model: the stack's own floor for one-job POSTs.

One ``CreateAPIView``, a ``ModelSerializer`` of ``Job`` (kind, payload, priority), token auth,
``IsAuthenticated``: no checks, no events, no notifications. ``bench.minimal_settings`` mounts it
at ``/bench/minimal/`` beside the real URLs, so the real endpoint and this one are served by the
same server process in the same run.
"""

from __future__ import annotations

from django.urls import include, path
from rest_framework import generics, serializers
from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import IsAuthenticated

from jobs.models import Job


class MinimalJobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = ["uuid", "kind", "payload", "priority", "dependency"]
        read_only_fields = ["uuid"]


class MinimalCreate(generics.CreateAPIView):
    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]
    serializer_class = MinimalJobSerializer
    throttle_classes: list = []


urlpatterns = [
    path("bench/minimal/", MinimalCreate.as_view()),
    path("", include("resilient.urls")),
]
