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
