from django.apps import AppConfig


class TailhookConfig(AppConfig):
    name = "tailhook.django"
    label = "tailhook"
    verbose_name = "tailhook"
    default_auto_field = "django.db.models.BigAutoField"
