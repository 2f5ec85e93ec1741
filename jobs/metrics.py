"""Where ``/metrics`` used to live: it is ``jobs.ops.metrics`` now; this keeps old imports working."""

from __future__ import annotations

from jobs.ops.metrics import metrics_view, registry, submission_rejected

__all__ = ["metrics_view", "registry", "submission_rejected"]
