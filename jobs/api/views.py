"""REST endpoints for jobs and the queue. Each view translates HTTP to one service or selector call."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import selectors, services, validation
from jobs.api import parsers, schema, throttles
from jobs.api.serializers import (
    JobBatchResultSerializer,
    JobBatchSerializer,
    JobDetailSerializer,
    JobPatchSerializer,
    JobSerializer,
    JobSubmitSerializer,
    QueueSerializer,
    job_data,
)
from jobs.exceptions import InvalidInput
from jobs.models import JobStatus

SUBMIT_FIELDS = set(JobSubmitSerializer().fields)
SUBMIT_ACTIONS = frozenset({"create", "bulk"})
UUID_PATTERN = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


def json_object(data: Any, *, allowed: set[str] | None) -> dict:
    """The request body as a dict with only ``allowed`` keys (None: any), else a 400 naming the problem."""
    if not isinstance(data, dict):
        raise InvalidInput("non_field_errors", "the body must be a JSON object")
    unknown = sorted(set(data) - allowed) if allowed is not None else []
    if unknown:
        # The name goes back as a JSON key: escape lone surrogates, which UTF-8 cannot encode.
        field = unknown[0].encode("utf-8", "backslashreplace").decode("utf-8")
        raise InvalidInput(field, f"unknown field; allowed: {', '.join(sorted(allowed))}")
    return data


# What pagination and DRF's renderer choice read besides a view's own parameters.
PAGE_PARAMETERS = ("page", "format")


def query_params(request) -> dict[str, list[str]]:
    """The query string as name -> every value given."""
    return {name: request.query_params.getlist(name) for name in request.query_params}


def check_query(request, allowed: tuple[str, ...] = ()) -> None:
    """400 for a query parameter the view does not read (pagination's are always allowed)."""
    validation.check_known_params(request.query_params, [*allowed, *PAGE_PARAMETERS])


LIST_PARAMETERS = [
    OpenApiParameter("status", OpenApiTypes.STR, many=True, explode=True, enum=JobStatus.values,
                     description="any of these statuses: repeat the parameter or give a comma list"),
    OpenApiParameter("kind", OpenApiTypes.STR),
    OpenApiParameter("dependency", OpenApiTypes.STR),
    OpenApiParameter("id_prefix", OpenApiTypes.STR, pattern=r"^[0-9a-fA-F-]{8,36}$",
                     description="the first 8 to 32 hex digits of a job id (dashes allowed where the id has them)"),
    OpenApiParameter("payload_contains", OpenApiTypes.STR,
                     description='a JSON object the payload contains, e.g. {"customer": {"id": 42}} '
                     "(PostgreSQL's @> semantics on both databases)"),
    OpenApiParameter("created_after", OpenApiTypes.DATETIME,
                     description="created at or after this ISO 8601 time (a zone is required)"),
    OpenApiParameter("created_before", OpenApiTypes.DATETIME,
                     description="created before this ISO 8601 time (a zone is required)"),
    OpenApiParameter("ordering", OpenApiTypes.STR, enum=list(selectors.ORDERINGS),
                     description="pop = pending jobs in the order workers take them"),
]


class JobViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    lookup_field = "uuid"
    lookup_url_kwarg = "id"
    lookup_value_regex = UUID_PATTERN
    serializer_class = JobSerializer

    def is_submission(self) -> bool:
        return self.action in SUBMIT_ACTIONS

    def get_throttles(self):
        return [throttles.SubmitThrottle()] if self.action in SUBMIT_ACTIONS else super().get_throttles()

    # Signed-in users only; which jobs they see and may change is the services' rule (jobs.access).
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        query = selectors.job_query_parse(query_params(self.request), also_allowed=PAGE_PARAMETERS)
        return selectors.job_list(user=self.request.user, query=query)

    @extend_schema(parameters=LIST_PARAMETERS, responses={200: JobSerializer(many=True), **schema.errors(400, 404)})
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=JobSubmitSerializer,
        responses={201: JobSerializer, 200: JobSerializer, **schema.errors(*schema.SUBMIT)},
    )
    def create(self, request):
        data = json_object(request.data, allowed=SUBMIT_FIELDS)
        if "kind" not in data:
            raise InvalidInput("kind", "this field is required")
        for field, value in data.items():
            # The schema marks no field nullable: a null is a mistake, not "use the default".
            if value is None:
                raise InvalidInput(field, "may not be null")
        job, created = services.job_submit(**data, submitter=request.user)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(job_data(job), status=code)

    @extend_schema(
        request=JobBatchSerializer,
        responses={201: JobBatchResultSerializer, **schema.errors(*schema.SUBMIT)},
        summary="Submit up to RESILIENT_MAX_BATCH jobs, all or nothing",
    )
    @action(detail=False, methods=["post"], parser_classes=[parsers.BatchJSONParser])
    def bulk(self, request):
        data = json_object(request.data, allowed={"jobs"})
        if "jobs" not in data:
            raise InvalidInput("jobs", "this field is required")
        answers = services.jobs_submit_batch(items=data["jobs"], submitter=request.user)
        jobs = [{**job_data(job), "created": created} for job, created in answers]
        return Response({"jobs": jobs}, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: JobDetailSerializer, **schema.errors(404)})
    def retrieve(self, request, id=None):
        job = selectors.job_get(job_id=id, user=request.user)
        return Response(JobDetailSerializer(job).data)

    @extend_schema(request=JobPatchSerializer, responses={200: JobSerializer, **schema.errors(*schema.WRITE, 403, 404, 409)})
    def partial_update(self, request, id=None):
        data = json_object(request.data, allowed={"priority"})
        if "priority" not in data:
            raise InvalidInput("priority", "this field is required")
        job = services.job_reprioritise(job_id=id, priority=data["priority"], user=request.user)
        return Response(JobSerializer(job).data)

    @extend_schema(request=None, responses={200: JobSerializer, **schema.errors(403, 404, 409)})
    @action(detail=True, methods=["post"])
    def cancel(self, request, id=None):
        job = services.job_cancel(job_id=id, user=request.user)
        return Response(JobSerializer(job).data)

    @extend_schema(request=None, responses={200: JobSerializer, **schema.errors(403, 404, 409)})
    @action(detail=True, methods=["post"])
    def retry(self, request, id=None):
        job = services.job_retry(job_id=id, user=request.user)
        return Response(JobSerializer(job).data)


class QueueView(APIView):
    @extend_schema(responses={200: QueueSerializer, **schema.errors()})
    def get(self, request):
        return Response(QueueSerializer(selectors.queue_summary(user=request.user)).data)
