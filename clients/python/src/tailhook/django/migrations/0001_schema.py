"""Installs or upgrades tailhook's schema with the steps of `tailhook.schema` (those `tailhook migrate --print-sql --all` prints).

Not atomic: one step (`CREATE INDEX CONCURRENTLY`) cannot run in a
transaction, so each step runs on its own; each transactional step is one
statement that is atomic by itself and skips a version already applied.
"""

from django.db import migrations


def install(apps, schema_editor):  # type: ignore[no-untyped-def]
    from tailhook.schema import PARTITIONED, steps

    with schema_editor.connection.cursor() as cursor:
        cursor.execute(PARTITIONED)
        partitioned = bool(cursor.fetchone()[0])
        for step in steps(partitioned):
            cursor.execute(step.sql)


class Migration(migrations.Migration):
    atomic = False
    initial = True
    dependencies: list = []
    operations = [migrations.RunPython(install, migrations.RunPython.noop, elidable=False)]
