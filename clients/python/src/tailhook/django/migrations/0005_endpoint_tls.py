# Django's state of the endpoint's TLS columns (schema version 26): creates nothing in the database.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tailhook', '0004_trace_context'),
    ]

    operations = [
        migrations.AddField(
            model_name='endpoint',
            name='tls_client_cert',
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='endpoint',
            name='tls_client_key',
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='endpoint',
            name='tls_ca_bundle',
            field=models.TextField(blank=True, null=True),
        ),
    ]
