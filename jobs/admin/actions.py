"""The intermediate page of an admin action that needs input, and the bound on what one action touches."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.template.response import TemplateResponse

# One admin action touches at most this many jobs (one service call, one transaction each).
ACTION_LIMIT = 1000


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
