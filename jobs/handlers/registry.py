"""The registry of job kinds: ``@handler("name")`` registers a function that runs a job."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobs import conf
from jobs.exceptions import InvalidInput

BUILTIN_MODULES = ("jobs.handlers.builtin",)

Validator = Callable[[dict, str], None]
# What in a job (payload, dependency) needs ``jobs.tune_job_kinds`` (a phrase naming it), or None.
Privileged = Callable[[dict, str], str | None]


@dataclass(frozen=True)
class JobContext:
    """What a handler knows about the attempt it runs."""

    job_id: str
    kind: str
    dependency: str
    attempt: int  # 1 for the first attempt


@dataclass(frozen=True)
class JobKind:
    name: str
    run: Callable[[dict, JobContext], Any]
    dependency: str
    validate: Validator | None = None
    privileged: Privileged | None = None
    is_async: bool = False  # ``run`` is ``async def``: awaited on the worker's loop, not in a thread


_kinds: dict[str, JobKind] = {}


def handler(
    name: str, *, dependency: str = "local", validate: Validator | None = None, privileged: Privileged | None = None
):
    """Register the decorated ``run(payload, context)`` as job kind ``name``.

    ``dependency`` is the breaker the kind's jobs go through unless a job names another;
    ``validate(payload, dependency)`` runs at submission and raises ``InvalidInput``.
    ``privileged(payload, dependency)`` names what only ``jobs.tune_job_kinds`` may use (None: nothing).
    The function may be ``async def``; a sync one runs in a thread.
    """

    def register(func: Callable[[dict, JobContext], Any]):
        _kinds[name] = JobKind(name=name, run=func, dependency=dependency, validate=validate,
                               privileged=privileged, is_async=inspect.iscoroutinefunction(func))
        return func

    return register


def load() -> None:
    """Import the built-in handlers and every module named in RESILIENT["HANDLER_MODULES"]."""
    for module in (*BUILTIN_MODULES, *conf.get("HANDLER_MODULES")):
        importlib.import_module(module)


def get(name: str) -> JobKind:
    """The registered kind ``name``; ``InvalidInput`` on field ``kind`` when unknown."""
    try:
        return _kinds[name]
    except (KeyError, TypeError):
        raise InvalidInput("kind", f"unknown job kind {name!r}; known kinds: {', '.join(names())}") from None


def names() -> list[str]:
    return sorted(_kinds)
