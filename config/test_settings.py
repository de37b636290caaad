"""The test suite's settings: config.settings with SHOPFLOW_ENV=test and the abuse limits
off unless the run says otherwise. pytest-django loads the settings before any conftest.py
runs, so this is the first place the suite can ask for its environment; the processes it
starts inherit it."""

import os

os.environ.setdefault("SHOPFLOW_ENV", "test")
# The suite checks out many times from 127.0.0.1; the tests of the abuse limits turn them
# on again (the abuse_limits fixture).
os.environ.setdefault("RATE_LIMITS_ENABLED", "0")

from config.settings import *  # noqa: E402, F403
