from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """Register the sandbox partners so `manage.py run_sandbox` is available."""

    name = "sandbox"
    verbose_name = "Sandbox partners"
