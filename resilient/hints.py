"""Send an HTTP request's worker wake-ups and dashboard hints after its response, not before.

An ASGI middleware around Django: the hints a request's services ask for (``jobs.notify``) are
noted while it runs and sent once the response has been handed to the server, so a client's
answer never waits for them. Hints carry no data and the changes are committed by then.
"""

from __future__ import annotations

import asyncio
import logging

from jobs import notify

# Past this the hints are dropped (logged): a hung Redis must not hold every request's
# application open until the server cancels it. A lost hint costs at most one poll interval.
HINTS_TIMEOUT = 5.0

log = logging.getLogger(__name__)


class HintsAfterResponse:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with notify.hints_after_response() as hints:
            try:
                await self.app(scope, receive, send)
            finally:
                if hints:
                    try:
                        await asyncio.wait_for(notify.asend_hints(hints), timeout=HINTS_TIMEOUT)
                    except TimeoutError:
                        log.warning("hints of %s %r not sent within %s s", scope.get("method"), scope.get("path"), HINTS_TIMEOUT)
