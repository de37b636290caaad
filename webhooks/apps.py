from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Partner webhooks"

    def ready(self) -> None:
        from webhooks import receivers  # noqa: F401  (the daily cleanup's targets)
