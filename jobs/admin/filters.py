"""List filters of the job admin whose choices come from code or settings, never ``SELECT DISTINCT``."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin
from django.db.models import Q

from jobs import dependencies
from jobs.handlers import registry
from jobs.models import JobStatus

ALL = "all"


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
