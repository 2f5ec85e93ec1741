"""Job kinds. Add your own with ``@handler("name")`` in a module listed in RESILIENT_HANDLER_MODULES."""

from jobs.handlers.registry import JobContext, handler

__all__ = ["JobContext", "handler"]
