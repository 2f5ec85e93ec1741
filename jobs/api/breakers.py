"""REST endpoints for the circuit breakers: read them, force them open or closed, release them,
change their dependency's flow-control limits."""

from __future__ import annotations

import re

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import breakers, conf, dependencies, presenters, services
from jobs.api import compat, permissions, schema
from jobs.api.pagination import StrictPageNumberPagination
from jobs.api.serializers import (
    BreakerDetailSerializer,
    BreakerSerializer,
    CircuitSerializer,
    LimitsRequestSerializer,
    OverrideRequestSerializer,
)
from jobs.api.views import check_query, json_object
from jobs.exceptions import InvalidInput
from jobs.handlers import registry as handlers

OVERRIDE_FIELDS = {"reason", "ttl_seconds"}
NAME_PATTERN = r"[A-Za-z0-9_.-]{1,64}"


class BreakerListView(APIView):
    permission_classes = [IsAuthenticated]

    pagination_class = StrictPageNumberPagination

    @extend_schema(responses={200: BreakerSerializer(many=True), **schema.errors(400, 404)}, summary="Every breaker")
    def get(self, request):
        check_query(request)
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

    def get_permissions(self):
        if self.request.method == "PATCH":
            return [permission() for permission in LIMITS_PERMISSIONS]
        return super().get_permissions()

    @extend_schema(request=LimitsRequestSerializer,
                   responses={200: BreakerDetailSerializer, **schema.errors(*schema.WRITE, 403, 404)},
                   summary="Change the dependency's flow-control limits live (audited)")
    def patch(self, request, name: str):
        data = json_object(request.data, allowed=LIMITS_FIELDS)
        reason = data.pop("reason", None)
        breakers.breaker_limits_change(name=name, actor=services.actor_name(request.user), reason=reason,
                                       changes=data)
        return Response(presenters.breaker_detail(row=breakers.breaker_row(name), user=request.user))


LIMITS_FIELDS = {"reason", *breakers.limits.FIELDS}
LIMITS_PERMISSIONS = [permissions.operator("jobs.override_breaker")]  # the same as the overrides


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
    """The write-up's ``GET /circuit``: the breaker its flow goes through, or ``?dependency=``'s."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter(
            "dependency", OpenApiTypes.STR, pattern=f"^{NAME_PATTERN}$",
            description="The dependency to describe. Default: `validation` when VALIDATION_URL is set, "
                        "otherwise the dependency the write-up's `POST /jobs` jobs run on.")],
        responses={200: CircuitSerializer, **schema.errors(400, 404)},
        summary="A breaker, the write-up's way",
    )
    def get(self, request):
        unknown = sorted(set(request.query_params) - {"dependency"})
        if unknown:
            raise InvalidInput(unknown[0], "unknown parameter; allowed: dependency")
        name = request.query_params.get("dependency")
        if name is None:
            name = dependencies.VALIDATION if conf.get("VALIDATION_URL") else handlers.get(compat.WRITE_UP_KIND).dependency
        elif not re.fullmatch(NAME_PATTERN, name):
            raise InvalidInput("dependency", "must be a dependency name (letters, digits, _ . -; at most 64)")
        row = breakers.breaker_row(name)  # created on first sight for a configured one; else 404
        return Response({"dependency": name, **presenters.circuit_status(row=row, user=request.user)})
