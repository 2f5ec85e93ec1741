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
  on PostgreSQL (``jobs.pagination``), no facet counts, filters whose choices come from settings
  rather than ``SELECT DISTINCT``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import ShowFacets
from django.contrib.admin.utils import unquote
from django.db.models import Q, QuerySet
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.timesince import timesince

from jobs import access, breakers, dependencies, presenters, redaction, selectors, services
from jobs.exceptions import Forbidden, IllegalTransition, InvalidInput, JobNotFound
from jobs.handlers import registry
from jobs.models import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    Breaker,
    BreakerEvent,
    BreakerEventKind,
    Job,
    JobEvent,
    JobStatus,
    WorkerHeartbeat,
)
from jobs.pagination import EstimatedCountPaginator

# One admin action touches at most this many jobs (one service call, one transaction each).
ACTION_LIMIT = 1000
ALL = "all"
# Breaker events shown inline on a breaker's page (the full history is under Breaker events).
INLINE_EVENTS = 50


class ReadOnly:
    """Admin (or inline) that shows but never adds, edits or deletes: every change goes through
    the service layer (actions), so it is audited and shows up live on the dashboard."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class StatusFilter(admin.SimpleListFilter):
    """Status, defaulting to pending (the queue); "all" lists every status."""

    title = "status"
    parameter_name = "status"
    default = JobStatus.PENDING

    def lookups(self, request, model_admin):
        return [*JobStatus.choices, (ALL, "All statuses")]

    def selected(self) -> str:
        return self.value() or self.default

    def choices(self, changelist):
        for value, label in self.lookup_choices:
            yield {
                "selected": self.selected() == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request, queryset):
        selected = self.selected()
        if selected == ALL:
            return queryset
        if selected not in JobStatus.values:
            return queryset.none()
        return queryset.filter(status=selected)


class PriorityBandFilter(admin.SimpleListFilter):
    title = "priority band"
    parameter_name = "band"
    BANDS = {
        "urgent": ("urgent (10 and above, emergency)", Q(priority__gte=10)),
        "raised": ("raised (1 to 9)", Q(priority__gte=1, priority__lte=9)),
        "normal": ("normal (0)", Q(priority=0)),
        "lowered": ("lowered (below 0)", Q(priority__lt=0)),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.BANDS.items()]

    def queryset(self, request, queryset):
        band = self.BANDS.get(self.value() or "")
        return queryset.filter(band[1]) if band else queryset


class _ChoicesFilter(admin.SimpleListFilter):
    """A filter on a plain field whose choices come from code, not from SELECT DISTINCT."""

    names: Callable[[], list[str]]

    def lookups(self, request, model_admin):
        return [(name, name) for name in sorted(self.names())]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.parameter_name: self.value()}) if self.value() else queryset


class KindFilter(_ChoicesFilter):
    title = "kind"
    parameter_name = "kind"
    names = staticmethod(registry.names)


class DependencyFilter(_ChoicesFilter):
    title = "dependency"
    parameter_name = "dependency"
    names = staticmethod(lambda: list(dependencies.configured()))


class PriorityForm(forms.Form):
    priority = forms.IntegerField(
        min_value=PRIORITY_MIN,
        max_value=PRIORITY_MAX,
        help_text=f"{PRIORITY_MIN} to {PRIORITY_MAX}; higher runs first; 10 is what emergency means.",
    )


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
        ids = list(queryset.order_by().values_list("uuid", flat=True)[: ACTION_LIMIT + 1])
        if len(ids) > ACTION_LIMIT:
            self.message_user(
                request, f"Refused: {verb} acts on at most {ACTION_LIMIT} jobs at once; narrow the selection.", messages.ERROR
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
        return action_form_page(
            self, request, queryset, action="set_priority", title="Set priority", form=form,
            items=[f"{j.short_id} {j.kind} · {j.dependency} · {j.status} · priority {j.priority}" for j in queryset.order_by("-priority", "seq")[:20]],
            intro="Only pending jobs can be reprioritised; the others are reported and left as they are.",
        )


def action_form_page(
    model_admin: admin.ModelAdmin, request, queryset: QuerySet, *, action: str, title: str, form: forms.Form,
    items: list[str], intro: str = "", submit: str = "",
) -> TemplateResponse:
    """The intermediate page of an action that needs input (a priority; for breakers, a reason
    and a duration). It posts the selection back with ``apply=1``; the action then validates
    ``form`` and either applies it or shows this page again with the errors."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "intro": intro,
        "submit": submit or title,
        "opts": model_admin.model._meta,
        "form": form,
        "items": items,
        "count": queryset.order_by().values("pk")[: ACTION_LIMIT + 1].count(),
        "action": action,
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "limit": ACTION_LIMIT,
    }
    return TemplateResponse(request, "admin/jobs/action_form.html", context)


@admin.register(JobEvent)
class JobEventAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["at", "job_link", "kind", "actor", "details_display"]
    list_filter = ["kind"]
    search_fields = ["actor"]
    search_help_text = "A job id (full) or an actor (user:name, a worker id, system)."
    list_select_related = ["job"]
    ordering = ["-id"]
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    fields = ["job", "kind", "at", "actor", "details"]
    readonly_fields = fields

    def get_queryset(self, request):
        """Events of the jobs this staff user may see (their own without ``jobs.view_all_jobs``)."""
        return super().get_queryset(request).filter(access.visible_filter(request.user, through="job__"))

    @admin.display(description="job")
    def job_link(self, event: JobEvent) -> str:
        url = reverse("admin:jobs_job_change", args=[event.job_id])
        return format_html('<a href="{}" title="{}"><code>{}</code></a>', url, event.job.uuid, event.job.short_id)

    @admin.display(description="details")
    def details_display(self, event: JobEvent) -> str:
        return Truncator(str(event.details)).chars(100)

    def get_search_results(self, request, queryset, search_term):
        try:
            return queryset.filter(job__uuid=uuid.UUID(search_term.strip())), False
        except ValueError:
            return super().get_search_results(request, queryset, search_term)


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["worker_id", "hostname", "pid", "started_at", "last_seen"]
    ordering = ["-last_seen"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- Breakers -------------------------------------------------------------------------------------


class OverrideForm(forms.Form):
    """Force open… / Force closed…: why, and for how long (empty: until released)."""

    reason = forms.CharField(
        max_length=breakers.MAX_REASON_CHARS,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Shown on the breaker, in its history, in the logs and on the dashboard.",
    )
    duration_minutes = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=breakers.MAX_TTL_SECONDS // 60,
        label="Duration (minutes)",
        help_text="Optional: the override lifts by itself after this many minutes. Empty: until released.",
    )


class BreakerEventPrivacy:
    """Counted failures quote other users' jobs and URLs: staff without ``jobs.view_all_jobs`` see
    transitions and overrides only, with details that name no job."""

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if access.can_view_all(request.user):
            return queryset
        return queryset.exclude(kind=BreakerEventKind.FAILURE)

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if access.can_view_all(request.user):
            return fields
        return ["public_details" if f == "details" else f for f in fields]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "public_details"]

    @admin.display(description="details")
    def public_details(self, event: BreakerEvent) -> str:
        return str(presenters.breaker_details_public(event.details))


class BreakerEventInline(BreakerEventPrivacy, ReadOnly, admin.TabularInline):
    """The breaker's last transitions, overrides and counted failures, newest first, read-only."""

    model = BreakerEvent
    fields = ["at", "kind", "from_state", "to_state", "actor", "reason", "details"]
    readonly_fields = fields
    ordering = ["-id"]
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = f"last {INLINE_EVENTS} breaker events (all of them: Breaker events)"

    def get_queryset(self, request):
        # The inline cannot be sliced (the formset filters it afterwards): bound it by id instead.
        queryset = super().get_queryset(request)
        name = request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
        if name is None:
            return queryset.none()
        oldest = (
            BreakerEvent.objects.filter(breaker_id=unquote(name)).order_by("-id")
            .values_list("id", flat=True)[INLINE_EVENTS - 1:INLINE_EVENTS]
        )
        return queryset.filter(id__gte=oldest[0]) if oldest else queryset


@admin.register(Breaker)
class BreakerAdmin(ReadOnly, admin.ModelAdmin):
    """Read-only: state and override change only through ``jobs.breakers``' services (audited)."""

    list_display = ["name", "state_display", "shadow_display", "override_display", "failures_display",
                    "retry_at", "held_display"]
    actions = ["force_open", "force_closed", "release"]
    inlines = [BreakerEventInline]
    fieldsets = [
        (None, {"fields": ["name", "state_display", "shadow_display", "failures_display", "held_display",
                           "opened_at", "retry_at", "level", "period", "held_since"]}),
        ("Override", {"fields": ["override_display", "override_reason", "override_actor", "override_at",
                                 "override_expires_at"]}),
        ("Half-open trial", {"fields": ["trial_owner", "trial_job", "trial_expires_at"]}),
        ("Recent counted failures", {"fields": ["recent_errors_display", "updated_at"]}),
    ]
    readonly_fields = [f for group in fieldsets for f in group[1]["fields"]]

    def get_queryset(self, request):
        return selectors.breakers_with_pending(super().get_queryset(request))

    def get_fieldsets(self, request, obj=None):
        """The recent counted failures quote other users' jobs: for view-all holders only."""
        fieldsets = super().get_fieldsets(request, obj)
        if access.can_view_all(request.user):
            return fieldsets
        return [(name, {**opts, "fields": [f for f in opts["fields"] if f != "recent_errors_display"]})
                for name, opts in fieldsets]

    # --- columns ---------------------------------------------------------------------------

    @admin.display(description="state")
    def state_display(self, row: Breaker) -> str:
        """What callers get now (an override in force wins)."""
        now = timezone.now()
        override = breakers.override_in_force(row, now)
        return f"forced {override}" if override else row.state

    @admin.display(description="shadow state")
    def shadow_display(self, row: Breaker) -> str:
        """The automatic state: what the breaker would be without the override."""
        if breakers.override_in_force(row, timezone.now()):
            return f"automatic: {row.state}"
        return "— (same)"

    @admin.display(description="override")
    def override_display(self, row: Breaker) -> str:
        now = timezone.now()
        override = breakers.override_in_force(row, now)
        if not override:
            return "—"
        until = f" until {row.override_expires_at:%Y-%m-%d %H:%M:%S %Z}" if row.override_expires_at else " until released"
        return f"forced {override} by {row.override_actor}{until}: {row.override_reason or '(no reason)'}"

    @admin.display(description="failures")
    def failures_display(self, row: Breaker) -> str:
        dep = dependencies.configured().get(row.name) or dependencies.Dependency(name=row.name)
        return f"{row.failures}/{dep.failure_threshold}"

    @admin.display(description="held jobs")
    def held_display(self, row: Breaker) -> int:
        """Pending jobs this breaker holds back now (0 while it admits calls)."""
        if breakers.decide(row, timezone.now()) == breakers.Decision.ADMIT:
            return 0
        return getattr(row, "pending", 0)

    @admin.display(description="recent errors")
    def recent_errors_display(self, row: Breaker) -> str:
        errors = breakers.recent_errors(row.name)
        if not errors:
            return "—"
        return format_html_join(
            "", "<div><code>{}</code> job {}: {}</div>",
            ((e["at"], e["job"] or "—", Truncator(e["error"]).chars(200)) for e in errors),
        )

    # --- permissions: read-only (ReadOnly); each action has its own ------------------------

    def has_override_permission(self, request) -> bool:
        return request.user.has_perm("jobs.override_breaker")

    # --- actions: one service call per breaker --------------------------------------------

    def _override(self, request, queryset: QuerySet[Breaker], verb: str, service, **kwargs) -> None:
        actor = services.actor_name(request.user)
        done = []
        for name in queryset.order_by("name").values_list("name", flat=True)[:ACTION_LIMIT]:
            service(name=name, actor=actor, **kwargs)
            done.append(name)
        if done:
            self.message_user(request, f"{verb.capitalize()}: {', '.join(done)}.", messages.SUCCESS)

    def _override_with_form(self, request, queryset, *, action: str, title: str, verb: str, service):
        form = OverrideForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            minutes = form.cleaned_data["duration_minutes"]
            try:
                self._override(request, queryset, verb + (f" for {minutes} min" if minutes else ""), service,
                               reason=form.cleaned_data["reason"], ttl_seconds=minutes * 60 if minutes else None)
                return None
            except InvalidInput as exc:
                # The service's own checks (e.g. no NUL in the reason). The input is the same for
                # every breaker, so the first call refuses it before any breaker changed.
                form.add_error("reason" if exc.field == "reason" else "duration_minutes", exc.message)
        return action_form_page(
            self, request, queryset, action=action, title=title, form=form,
            items=[f"{row.name}: {self.state_display(row)}" for row in queryset.order_by("name")[:20]],
            intro="Every process honours the override at its next claim (within one poll interval); "
                  "outcomes are still recorded (shadow state).",
        )

    @admin.action(description="Force open…", permissions=["override"])
    def force_open(self, request, queryset):
        """Reject every call (planned maintenance): the dependency's jobs wait, nothing is called."""
        return self._override_with_form(request, queryset, action="force_open", title="Force open",
                                        verb="forced open", service=breakers.breaker_force_open)

    @admin.action(description="Force closed…", permissions=["override"])
    def force_closed(self, request, queryset):
        """Admit every call (a known false alarm): failures are counted but never trip it."""
        return self._override_with_form(request, queryset, action="force_closed", title="Force closed",
                                        verb="forced closed", service=breakers.breaker_force_closed)

    @admin.action(description="Release (back to automatic)", permissions=["override"])
    def release(self, request, queryset):
        self._override(request, queryset, "released", breakers.breaker_release, reason="released in admin")


@admin.register(BreakerEvent)
class BreakerEventAdmin(BreakerEventPrivacy, ReadOnly, admin.ModelAdmin):
    """Every breaker's history: transitions, overrides and counted failures, with why."""

    list_display = ["at", "breaker", "kind", "from_state", "to_state", "actor", "reason_display"]
    list_filter = ["breaker", "kind"]
    search_fields = ["actor", "reason"]
    ordering = ["-id"]
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    fields = ["breaker", "kind", "at", "actor", "from_state", "to_state", "reason", "details"]
    readonly_fields = fields

    @admin.display(description="reason")
    def reason_display(self, event: BreakerEvent) -> str:
        return Truncator(event.reason).chars(100)

