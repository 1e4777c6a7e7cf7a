# Django's state of who asked for a redelivery (schema version 29): creates nothing in the database.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tailhook', '0005_endpoint_tls'),
    ]

    operations = [
        migrations.AddField(
            model_name='delivery',
            name='redelivered_by',
            field=models.TextField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name='delivery',
            name='redelivered_at',
            field=models.DateTimeField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name='attempt',
            name='requested_by',
            field=models.TextField(null=True),
        ),
    ]
