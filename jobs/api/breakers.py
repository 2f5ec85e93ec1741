"""REST endpoints for the circuit breakers: read them, force them open or closed, release them."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import breakers, dependencies, presenters, services
from jobs.api import permissions, schema
from jobs.api.pagination import StrictPageNumberPagination
from jobs.api.views import json_object
from jobs.exceptions import InvalidInput

OVERRIDE_FIELDS = {"reason", "ttl_seconds"}
NAME_PATTERN = r"[A-Za-z0-9_.-]{1,64}"


class OverrideSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["open", "closed"])
    reason = serializers.CharField()
    actor = serializers.CharField()
    at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)


class TrialSerializer(serializers.Serializer):
    owner = serializers.CharField()
    job = serializers.UUIDField(allow_null=True)
    expires_at = serializers.DateTimeField()


class BreakerSerializer(serializers.Serializer):
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=["closed", "open", "half-open"], help_text="What callers get now.")
    shadow_state = serializers.ChoiceField(
        choices=["closed", "open", "half-open"], help_text="The automatic state (differs while overridden)."
    )
    override = OverrideSerializer(allow_null=True)
    failures = serializers.IntegerField(help_text="Consecutive counted failures.")
    threshold = serializers.IntegerField()
    opened_at = serializers.DateTimeField(allow_null=True)
    retry_at = serializers.DateTimeField(allow_null=True)
    retry_in_ms = serializers.IntegerField(allow_null=True)
    ready_to_test = serializers.BooleanField()
    held = serializers.IntegerField(help_text="Pending jobs this breaker holds back now.")
    pending = serializers.IntegerField()
    trial = TrialSerializer(allow_null=True)
    level = serializers.IntegerField(help_text="Reopens since the trip (the backoff exponent).")
    reset_timeout = serializers.FloatField()
    max_reset_timeout = serializers.FloatField()
    slow_call_seconds = serializers.FloatField()
    updated_at = serializers.DateTimeField()


class BreakerEventSerializer(serializers.Serializer):
    kind = serializers.CharField()
    at = serializers.DateTimeField()
    actor = serializers.CharField()
    from_state = serializers.CharField()
    to_state = serializers.CharField()
    reason = serializers.CharField()
    details = serializers.DictField()


class RecentErrorSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    job = serializers.CharField(allow_null=True)
    error = serializers.CharField()


class BreakerDetailSerializer(BreakerSerializer):
    recent_errors = RecentErrorSerializer(many=True)
    events = BreakerEventSerializer(many=True)


@extend_schema_field({"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": breakers.MAX_TTL_SECONDS})
class TtlField(serializers.FloatField):
    """More than 0 (the service refuses 0): OpenAPI 3.0 says so with ``exclusiveMinimum``."""


class OverrideRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=breakers.MAX_REASON_CHARS)
    ttl_seconds = TtlField(
        required=False,  # the range is the service's (jobs.breakers), stated in TtlField's schema
        help_text="Lift the override by itself after this many seconds, more than 0 (not for release).",
    )


class CircuitSerializer(BreakerSerializer):
    state = serializers.CharField(help_text='"Closed (failures: N)", "Open (reopening in N ms)", '
                                            '"Open (ready to test)", "Half-Open" or "Open (forced)".')
    status = serializers.ChoiceField(choices=["closed", "open", "half-open"])
    recent_errors = RecentErrorSerializer(many=True)


class BreakerListView(APIView):
    permission_classes = [IsAuthenticated]

    pagination_class = StrictPageNumberPagination

    @extend_schema(responses={200: BreakerSerializer(many=True), **schema.errors(404)}, summary="Every breaker")
    def get(self, request):
        paginator = self.pagination_class()
        breakers.breakers_ensure()  # every configured dependency listed, even before its first call
        page = paginator.paginate_queryset(presenters.breaker_list(), request, view=self)
        return paginator.get_paginated_response(page)


class BreakerDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: BreakerDetailSerializer, **schema.errors(404)},
                   summary="One breaker with its recent events")
    def get(self, request, name: str):
        # breaker_row creates a configured dependency's row on first sight (presenters only read).
        return Response(presenters.breaker_detail(row=breakers.breaker_row(name), user=request.user))


class _OverrideView(APIView):
    permission_classes = [permissions.operator("jobs.override_breaker")]
    service = None

    @extend_schema(request=OverrideRequestSerializer,
                   responses={200: BreakerSerializer, **schema.errors(*schema.WRITE, 403, 404)})
    def post(self, request, name: str):
        data = json_object(request.data, allowed=OVERRIDE_FIELDS)
        for field, value in data.items():
            # As for jobs: the schema marks no field nullable; leave it out for "none".
            if value is None:
                raise InvalidInput(field, "may not be null; leave the field out instead")
        self.service(name=name, actor=services.actor_name(request.user), **data)
        return Response(presenters.breaker_summary(row=breakers.breaker_row(name)))


class ForceOpenView(_OverrideView):
    service = staticmethod(breakers.breaker_force_open)


class ForceClosedView(_OverrideView):
    service = staticmethod(breakers.breaker_force_closed)


class ReleaseView(_OverrideView):
    service = staticmethod(breakers.breaker_release)


class CircuitView(APIView):
    """The write-up's ``GET /circuit``: the default dependency's breaker."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: CircuitSerializer, **schema.errors()},
                   summary="The default breaker, the write-up's way")
    def get(self, request):
        row = breakers.breaker_row(dependencies.DEFAULT)  # created on first sight, as for the list
        return Response(presenters.circuit_status(row=row, user=request.user))
