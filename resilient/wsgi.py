"""WSGI entry point: the HTTP API alone (no websockets), for API nodes behind a WSGI server.

``gunicorn resilient.wsgi`` serves every HTTP route; the dashboard's socket and the worker need
Daphne and ``runworker`` (docs/operations.md, runtime shapes). Django's own body limit
(``RESILIENT_MAX_BODY_BYTES``) and the batch parser's bound the bodies; the ASGI middleware that
refuses them before reading is Daphne's.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilient.settings")
application = get_wsgi_application()
