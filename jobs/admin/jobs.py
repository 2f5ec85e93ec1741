"""Django admin for jobs: a read-only view of the store whose every action goes through
``jobs.services`` (so it is validated, audited with the admin user as actor, and broadcast).

Decisions:
- No add: jobs are submitted through the API (``job_submit`` validates kind and payload against
  the handler); no delete: the audit trail must not lose jobs; no field is editable, since
  status, attempts, lease and priority only change through the service layer.
- The list opens on the queue: the status filter defaults to *pending*, in pop order (highest
  priority, then oldest: the ``job_pop_order`` index). Any other status, or *all*, lists newest
  first (the primary key). Pop order over every status would sort the whole table.
- Fast with a million jobs: no full count (``show_full_result_count = False``), estimated counts
  on PostgreSQL (``jobs.admin.paginator``), no facet counts, filters whose choices come from settings
  rather than ``SELECT DISTINCT``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import ShowFacets
from django.db.models import Q, QuerySet
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.timesince import timesince

from jobs import access, redaction, services
from jobs.admin import actions as admin_actions
from jobs.admin.filters import DependencyFilter, KindFilter, PriorityBandFilter, StatusFilter
from jobs.admin.forms import PriorityForm
from jobs.admin.paginator import EstimatedCountPaginator
from jobs.admin.readonly import ReadOnly
from jobs.exceptions import Forbidden, IllegalTransition, JobNotFound
from jobs.models import Job, JobEvent, JobStatus


class JobEventInline(ReadOnly, admin.TabularInline):
    model = JobEvent
    fields = ["at", "kind", "actor", "details"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("jobs.view_job")


@admin.register(Job)
class JobAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["short_id_display", "kind", "dependency", "priority", "status", "attempts_display", "age", "last_error_display"]
    list_display_links = ["short_id_display"]
    list_filter = [StatusFilter, KindFilter, DependencyFilter, PriorityBandFilter]
    search_fields = ["idempotency_key", "last_error"]  # and ids: get_search_results decides
    search_help_text = "A job id (full, or its first characters), an exact idempotency key, or text from the last error."
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    list_per_page = 50
    actions = ["cancel_jobs", "retry_jobs", "set_priority"]
    inlines = [JobEventInline]
    fieldsets = [
        (None, {"fields": ["uuid", "kind", "dependency", "status", "priority", "submitter", "payload_display"]}),
        ("Attempts", {"fields": ["attempts", "max_attempts", "run_after", "last_error", "result"]}),
        ("Lease", {"fields": ["lease_owner", "lease_expires_at"]}),
        ("Times", {"fields": ["created_at", "started_at", "finished_at", "updated_at", "idempotency_key", "seq"]}),
    ]
    readonly_fields = [f for group in fieldsets for f in group[1]["fields"]]

    def get_queryset(self, request):
        """Staff without ``jobs.view_all_jobs`` see only the jobs they submitted."""
        return super().get_queryset(request).filter(access.visible_filter(request.user))

    @admin.display(description="payload")
    def payload_display(self, job: Job) -> str:
        text = json.dumps(redaction.payload_redacted(job.payload), indent=2, ensure_ascii=False)
        return format_html("<pre>{}</pre>", text)

    # --- list ----------------------------------------------------------------------------

    @admin.display(description="id", ordering="seq")
    def short_id_display(self, job: Job) -> str:
        return format_html('<code title="{}">{}</code>', job.uuid, job.short_id)

    @admin.display(description="attempts")
    def attempts_display(self, job: Job) -> str:
        return f"{job.attempts}/{job.max_attempts}"

    @admin.display(description="age", ordering="created_at")
    def age(self, job: Job) -> str:
        return timesince(job.created_at, depth=1)

    @admin.display(description="last error")
    def last_error_display(self, job: Job) -> str:
        return Truncator(job.last_error).chars(80)

    def get_ordering(self, request):
        status = request.GET.get(StatusFilter.parameter_name, StatusFilter.default)
        return ["-priority", "seq"] if status == JobStatus.PENDING else ["-seq"]

    def get_search_results(self, request, queryset, search_term):
        """Index-backed searches only where the term allows: a job id (full, or its first hex
        digits: a range on the unique uuid index) or an exact idempotency key; other text searches
        the last error (a scan: fine for an operator's query, ~0.6 s at a million jobs)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        by_key = Q(idempotency_key=term)
        try:
            return queryset.filter(Q(uuid=uuid.UUID(term)) | by_key), False
        except ValueError:
            pass
        digits = term.replace("-", "").lower()
        if len(digits) < 32 and all(c in "0123456789abcdef" for c in digits):
            low, high = uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))
            return queryset.filter(Q(uuid__gte=low, uuid__lte=high) | by_key), False
        return queryset.filter(by_key | Q(last_error__icontains=term)), False

    # --- permissions: read-only (ReadOnly); each action has its own ------------------------

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("jobs.cancel_job")

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("jobs.retry_job")

    def has_reprioritise_permission(self, request) -> bool:
        return request.user.has_perm("jobs.reprioritise_job")

    # --- actions: each one service call per job -------------------------------------------

    def _apply(self, request, queryset: QuerySet[Job], verb: str, call: Callable[[uuid.UUID, Any], Job]) -> None:
        ids = list(queryset.order_by().values_list("uuid", flat=True)[: admin_actions.ACTION_LIMIT + 1])
        if len(ids) > admin_actions.ACTION_LIMIT:
            self.message_user(
                request, f"Refused: {verb} acts on at most {admin_actions.ACTION_LIMIT} jobs at once; narrow the selection.", messages.ERROR
            )
            return
        done, refused = 0, []
        for job_id in ids:
            try:
                call(job_id, request.user)
                done += 1
            except (IllegalTransition, JobNotFound, Forbidden) as exc:
                refused.append(f"{str(job_id)[:8]}: {exc}")
        if done:
            self.message_user(request, f"{verb.capitalize()}: {done} job(s).", messages.SUCCESS)
        if refused:
            shown = "; ".join(refused[:5]) + (f"; and {len(refused) - 5} more" if len(refused) > 5 else "")
            self.message_user(request, f"Not {verb}: {len(refused)} job(s) ({shown}).", messages.WARNING)

    @admin.action(description="Cancel selected jobs", permissions=["cancel"])
    def cancel_jobs(self, request, queryset):
        self._apply(
            request, queryset, "cancelled",
            lambda job_id, user: services.job_cancel(job_id=job_id, user=user, reason="cancelled in admin"),
        )

    @admin.action(description="Retry selected jobs", permissions=["retry"])
    def retry_jobs(self, request, queryset):
        self._apply(request, queryset, "retried", lambda job_id, user: services.job_retry(job_id=job_id, user=user))

    @admin.action(description="Set priority…", permissions=["reprioritise"])
    def set_priority(self, request, queryset):
        """An intermediate page asks for the priority; posting it back applies it."""
        form = PriorityForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            priority = form.cleaned_data["priority"]
            self._apply(
                request, queryset, f"set to priority {priority}",
                lambda job_id, user: services.job_reprioritise(job_id=job_id, priority=priority, user=user),
            )
            return None
        return admin_actions.action_form_page(
            self, request, queryset, action="set_priority", title="Set priority", form=form,
            items=[f"{j.short_id} {j.kind} · {j.dependency} · {j.status} · priority {j.priority}" for j in queryset.order_by("-priority", "seq")[:20]],
            intro="Only pending jobs can be reprioritised; the others are reported and left as they are.",
        )
