"""Admin of the circuit breakers: state, override and history; overrides through ``jobs.breakers``."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.text import Truncator

from jobs import access, breakers, selectors, services
from jobs.admin import actions as admin_actions
from jobs.admin.events import BreakerEventPrivacy
from jobs.admin.forms import LimitsForm, OverrideForm
from jobs.admin.readonly import ReadOnly
from jobs.exceptions import InvalidInput
from jobs.models import Breaker, BreakerEvent

# Breaker events shown inline on a breaker's page (the full history is under Breaker events).
INLINE_EVENTS = 50


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
    actions = ["force_open", "force_closed", "release", "change_limits"]
    inlines = [BreakerEventInline]
    fieldsets = [
        (None, {"fields": ["name", "state_display", "shadow_display", "failures_display", "held_display",
                           "opened_at", "retry_at", "level", "period", "held_since"]}),
        ("Override", {"fields": ["override_display", "override_reason", "override_actor", "override_at",
                                 "override_expires_at"]}),
        ("Half-open trial", {"fields": ["trial_owner", "trial_job", "trial_expires_at"]}),
        ("Flow control", {"fields": ["flow_display", "probe_window", "rate_tat", "adaptive_limit", "limits"]}),
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
        dep = selectors.breaker_policy(name=row.name)
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
        for name in queryset.order_by("name").values_list("name", flat=True)[:admin_actions.ACTION_LIMIT]:
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
        return admin_actions.action_form_page(
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

    @admin.display(description="flow control")
    def flow_display(self, row: Breaker) -> str:
        """The allowance in force and the limits behind it (the claim's own rules)."""
        dep = selectors.breaker_policy(name=row.name)
        allowed = breakers.flow.allowance(row, dep, timezone.now())
        limits = breakers.limits_view(breakers.flow.limits(row, dep))
        calls = "no limit" if allowed.calls is None else f"{allowed.calls} in flight ({allowed.why})"
        return f"{calls}; cap {limits['max_concurrency'] or 'none'}; rate {limits['rate_limit'] or 'none'}"

    @admin.action(description="Change limits…", permissions=["override"])
    def change_limits(self, request, queryset):
        """Throttle or loosen a dependency live (audited; honoured at every worker's next claim)."""
        form = LimitsForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            data = form.cleaned_data
            changes = {"reset": True} if data["reset"] else {
                "max_concurrency": data["max_concurrency"], "rate_limit": data["rate_limit"] or None,
                **{key: data[key] for key in ("adaptive_min", "adaptive_max") if data[key] is not None}}
            try:
                self._override(request, queryset, "limits changed", breakers.breaker_limits_change,
                               reason=data["reason"], changes=changes)
                return None
            except InvalidInput as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return admin_actions.action_form_page(
            self, request, queryset, action="change_limits", title="Change limits", form=form,
            items=[f"{row.name}: {self.flow_display(row)}" for row in queryset.order_by("name")[:20]],
            intro="Every worker honours the new limits at its next claim; calls already in flight finish.",
        )

    @admin.action(description="Release (back to automatic)", permissions=["override"])
    def release(self, request, queryset):
        self._override(request, queryset, "released", breakers.breaker_release, reason="released in admin")
