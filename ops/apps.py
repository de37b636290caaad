from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"

    def ready(self) -> None:
        from ops import receivers  # noqa: F401  (task logs, counters, beat's start, alerts)
