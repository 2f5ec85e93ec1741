"""ASGI entry point: HTTP (Django), websockets (dashboard) and the ``jobs`` worker channel."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilient.settings")
django_asgi_app = get_asgi_application()

from resilient.body_limit import BodyLimitMiddleware  # noqa: E402  (needs Django set up first)
from resilient.hints import HintsAfterResponse  # noqa: E402
from resilient.routing import build_application  # noqa: E402

application = build_application(HintsAfterResponse(BodyLimitMiddleware(django_asgi_app)))
