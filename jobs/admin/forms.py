"""The inputs of admin actions that need one: a priority; an override's reason and duration."""

from __future__ import annotations

from django import forms

from jobs import breakers
from jobs.models import PRIORITY_MAX, PRIORITY_MIN


class PriorityForm(forms.Form):
    priority = forms.IntegerField(
        min_value=PRIORITY_MIN,
        max_value=PRIORITY_MAX,
        help_text=f"{PRIORITY_MIN} to {PRIORITY_MAX}; higher runs first; 10 is what emergency means.",
    )


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


class LimitsForm(forms.Form):
    """Change limits…: the cap and the rate limit in force (empty: no limit), the adaptive bounds
    (empty: unchanged), or back to configured."""

    reason = forms.CharField(
        max_length=breakers.MAX_REASON_CHARS, widget=forms.TextInput(attrs={"size": 60}),
        help_text="Required: shown in the breaker's history and on the dashboard.",
    )
    max_concurrency = forms.IntegerField(
        required=False, min_value=1, max_value=100_000, label="Max concurrency",
        help_text="Calls in flight at once across all workers. Empty: no cap.",
    )
    rate_limit = forms.CharField(
        required=False, max_length=16, label="Rate limit",
        help_text='Calls started per period across all workers: "N/s", "N/m" or "N/h". Empty: no limit.',
    )
    adaptive_min = forms.IntegerField(
        required=False, min_value=1, max_value=100_000, label="Adaptive min",
        help_text="Dependencies with adaptive concurrency: the lowest the limit goes. Empty: unchanged.",
    )
    adaptive_max = forms.IntegerField(
        required=False, min_value=1, max_value=100_000, label="Adaptive max",
        help_text="Dependencies with adaptive concurrency: the highest the limit goes. Empty: unchanged.",
    )
    reset = forms.BooleanField(
        required=False, label="Back to configured", help_text="Ignore the fields above: use the configured limits.",
    )
