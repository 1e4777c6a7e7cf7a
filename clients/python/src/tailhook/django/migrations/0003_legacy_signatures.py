# Django's state of deliveries.transform_claims (schema version 22) and the endpoint's legacy signature columns (23): creates nothing in the database.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tailhook', '0002_models'),
    ]

    operations = [
        migrations.AddField(
            model_name='delivery',
            name='transform_claims',
            field=models.SmallIntegerField(db_default=0, editable=False),
        ),
        migrations.AddField(
            model_name='endpoint',
            name='legacy_signature',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='endpoint',
            name='legacy_secret',
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='endpoint',
            name='standard_signature',
            field=models.BooleanField(db_default=True),
        ),
    ]
