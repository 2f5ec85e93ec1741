"""Jobs stored before ownership existed get their submitter back from their `submitted` event
(actor ``user:<username>``), so their owners keep seeing them and their idempotency keys keep
answering replays. Jobs of the system or of deleted accounts stay without one."""

from django.db import migrations
from django.db.models import Subquery

PREFIX = "user:"


def backfill(apps, schema_editor):
    Job = apps.get_model("jobs", "Job")
    JobEvent = apps.get_model("jobs", "JobEvent")
    User = apps.get_model(*_user_model().split("."))
    actors = (
        JobEvent.objects.filter(kind="submitted", actor__startswith=PREFIX, job__submitter__isnull=True)
        .values_list("actor", flat=True).distinct()
    )
    for actor in list(actors):
        user = User.objects.filter(**{User.USERNAME_FIELD: actor[len(PREFIX):]}).first()
        if user is None:
            continue
        submitted = JobEvent.objects.filter(kind="submitted", actor=actor).values("job_id")
        Job.objects.filter(submitter__isnull=True, seq__in=Subquery(submitted)).update(submitter=user)


def _user_model() -> str:
    from django.conf import settings

    return settings.AUTH_USER_MODEL


class Migration(migrations.Migration):
    dependencies = [("jobs", "0004_ownership")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
