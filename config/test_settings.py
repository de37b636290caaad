"""The test suite's settings: config.settings with SHOPFLOW_ENV=test unless the run says
otherwise. pytest-django loads the settings before any conftest.py runs, so this is the
first place the suite can ask for its environment; the processes it starts inherit it."""

import os

os.environ.setdefault("SHOPFLOW_ENV", "test")

from config.settings import *  # noqa: E402, F403
