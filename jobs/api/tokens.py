"""``/api/auth/token/``: the signed-in caller rotates (POST) or revokes (DELETE) their own token."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import tokens
from jobs.api import schema


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`.")


class TokenView(APIView):
    """Session or token only, never a password: password guessing stays behind the login forms'
    rate limit. A first token comes from a browser session (or ``manage.py drf_create_token``)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={201: TokenSerializer, **schema.errors(403)},
        summary="Obtain or rotate your API token",
        description="Issues a new token for the caller; the previous one stops working at once.",
    )
    def post(self, request):
        token = tokens.token_rotate(user=request.user)
        return Response(TokenSerializer({"token": token.key}).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={
            204: OpenApiResponse(description="Revoked (or there was none)."),
            **schema.errors(403),
        },
        summary="Revoke your API token",
        description="Deletes the caller's token: afterwards it answers 401.",
    )
    def delete(self, request):
        tokens.token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
