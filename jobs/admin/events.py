"""Admin of the two histories: job events and breaker events (with what staff may not see hidden)."""

from __future__ import annotations

import uuid

from django.contrib import admin
from django.contrib.admin.options import ShowFacets
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from jobs import access, presenters
from jobs.admin.paginator import EstimatedCountPaginator
from jobs.admin.readonly import ReadOnly
from jobs.models import BreakerEvent, BreakerEventKind, JobEvent


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
