"""Batch outcome recording, at its old import path (it lives in ``jobs.worker.outcomes``)."""

from __future__ import annotations

from jobs.worker.outcomes import Attempt, record, record_and_claim, record_each

__all__ = ["Attempt", "record", "record_and_claim", "record_each"]
