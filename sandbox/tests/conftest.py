"""Let the sandbox tests run without pytest-django (`-p no:django`): they need no Django."""

from types import SimpleNamespace

import pytest


class _SettingsStandIn:
    """Give the project's autouse fixtures a throwaway `settings` when pytest-django is off."""

    @pytest.fixture
    def settings(self) -> SimpleNamespace:
        return SimpleNamespace()


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("django"):
        config.pluginmanager.register(_SettingsStandIn(), "sandbox-settings-stand-in")
