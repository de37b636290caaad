from django.apps import AppConfig


class EngineConfig(AppConfig):
    name = "engine"

    def ready(self) -> None:
        from engine import receivers  # noqa: F401  (marks published steps queued)
