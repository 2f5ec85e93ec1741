"""Django admin for jobs, breakers and their histories: read-only views whose every action goes
through the service layer. Importing the submodules registers their ModelAdmins (autodiscovery
imports ``jobs.admin``)."""

from __future__ import annotations

from jobs.admin import breakers, events, jobs, workers

__all__ = ["breakers", "events", "jobs", "workers"]
