"""Finding jobs: a GIN index on the payload (PostgreSQL only: jsonb_path_ops answers ``@>``)."""

from django.db import migrations

GIN_INDEX = "job_payload_contains"


def payload_index_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite has no GIN; its containment walks the payloads (docs/operations.md)
    table = schema_editor.quote_name(apps.get_model("jobs", "Job")._meta.db_table)
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {GIN_INDEX} ON {table} USING gin (payload jsonb_path_ops)")


def payload_index_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {GIN_INDEX}")


class Migration(migrations.Migration):
    dependencies = [("jobs", "0005_backfill_submitters")]

    operations = [
        migrations.RunPython(payload_index_create, payload_index_drop, elidable=False),
    ]
