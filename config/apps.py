from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """The project's own checks of its settings (config/checks.py)."""

    name = "config"
    label = "shopflow_config"

    def ready(self) -> None:
        from config import checks  # noqa: F401  (registers them)
