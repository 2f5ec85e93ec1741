"""The pattern write-up's routes, with its shapes: ``POST /jobs``, ``GET /queue``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import selectors, services
from jobs.api import schema, throttles
from jobs.api.serializers import JobSerializer, QueueSizeSerializer
from jobs.api.views import json_object
from jobs.models import PRIORITY_EMERGENCY

WRITE_UP_PRIORITY = 1

WRITE_UP_KIND = "simulate"  # what the write-up's POST /jobs submits (GET /circuit describes its dependency)


class WriteUpJobView(APIView):
    """Any JSON object becomes a ``simulate`` job's payload; ``"emergency": true`` means priority 10."""

    throttle_classes = [throttles.SubmitThrottle]

    def is_submission(self) -> bool:
        return self.request.method == "POST"

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: JobSerializer, **schema.errors(*schema.SUBMIT)},
        summary="Submit a job the write-up's way",
    )
    def post(self, request):
        payload = json_object(request.data, allowed=None)
        emergency = payload.get("emergency") is True
        job, _ = services.job_submit(
            kind=WRITE_UP_KIND,
            payload=payload,
            priority=PRIORITY_EMERGENCY if emergency else WRITE_UP_PRIORITY,
            submitter=request.user,
        )
        return Response(JobSerializer(job).data)


class WriteUpQueueView(APIView):
    @extend_schema(responses={200: QueueSizeSerializer, **schema.errors()}, summary="Pending jobs, the write-up's way")
    def get(self, request):
        return Response({"size": selectors.pending_count()})
