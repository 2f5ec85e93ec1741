"""Operations at scale: counters that never go down, the housekeeping lease behind pruning, and a
GIN index on the payload (PostgreSQL only: jsonb_path_ops answers ``@>``).

The counters start from what the tables hold now, so the first scrape after the upgrade reads
the totals the old row-counting gauges read."""

from django.db import migrations, models
from django.db.models import Count

GIN_INDEX = "job_payload_contains"
FINISHED = ("succeeded", "failed", "cancelled")


def payload_index_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite has no GIN; its containment walks the payloads (docs/api.md#finding-jobs)
    table = schema_editor.quote_name(apps.get_model("jobs", "Job")._meta.db_table)
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {GIN_INDEX} ON {table} USING gin (payload jsonb_path_ops)")


def payload_index_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {GIN_INDEX}")


def counters_seed(apps, schema_editor):
    Job = apps.get_model("jobs", "Job")
    BreakerEvent = apps.get_model("jobs", "BreakerEvent")
    Counter = apps.get_model("jobs", "Counter")
    rows = [
        Counter(metric="submitted", dependency=dependency, value=n)
        for dependency, n in Job.objects.values_list("dependency").annotate(n=Count("*")).order_by()
    ]
    rows += [
        Counter(metric="finished", dependency=dependency, label=status, value=n)
        for dependency, status, n in Job.objects.filter(status__in=FINISHED)
        .values_list("dependency", "status").annotate(n=Count("*")).order_by()
    ]
    rows += [
        Counter(metric="breaker_transitions", dependency=name, label=kind, value=n)
        for name, kind, n in BreakerEvent.objects.exclude(kind="failure")
        .values_list("breaker_id", "kind").annotate(n=Count("*")).order_by()
    ]
    Counter.objects.bulk_create(rows)


class Migration(migrations.Migration):
    dependencies = [("jobs", "0006_flow_control")]

    operations = [
        migrations.CreateModel(
            name="Counter",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("metric", models.CharField(choices=[("submitted", "Submitted"), ("finished", "Finished"),
                                                     ("breaker_transitions", "Breaker Transitions")], max_length=32)),
                ("dependency", models.CharField(max_length=64)),
                ("label", models.CharField(blank=True, default="", max_length=32)),
                ("shard", models.PositiveSmallIntegerField(default=0)),
                ("value", models.BigIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("metric", "dependency", "label", "shard"), name="counter_series_shard"),
                ],
            },
        ),
        migrations.CreateModel(
            name="HousekeepingLease",
            fields=[
                ("name", models.CharField(max_length=32, primary_key=True, serialize=False)),
                ("owner", models.CharField(blank=True, default="", max_length=200)),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("last_run_at", models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.RunPython(counters_seed, migrations.RunPython.noop, elidable=True),
        migrations.RunPython(payload_index_create, payload_index_drop, elidable=False),
    ]
