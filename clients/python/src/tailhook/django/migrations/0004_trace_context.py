# Django's state of the trace context columns (schema version 25): creates nothing in the database.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tailhook', '0003_legacy_signatures'),
    ]

    operations = [
        migrations.AddField(
            model_name='event',
            name='traceparent',
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='event',
            name='tracestate',
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='endpoint',
            name='propagate_trace',
            field=models.BooleanField(db_default=True),
        ),
    ]
