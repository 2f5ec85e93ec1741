"""REST endpoints for the circuit breakers: read them, force them open or closed, release them."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import breakers, dependencies, presenters, services
from jobs.api import permissions, schema
from jobs.api.pagination import StrictPageNumberPagination
from jobs.api.serializers import (
    BreakerDetailSerializer,
    BreakerSerializer,
    CircuitSerializer,
    OverrideRequestSerializer,
)
from jobs.api.views import check_query, json_object
from jobs.exceptions import InvalidInput

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
