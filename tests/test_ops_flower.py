"""Flower as the Procfile starts it, on a free port: nothing without the basic-auth login."""

import os
import shlex
import subprocess
import sys
import time

import httpx
import pytest

from config.celery import app
from tests.chaos.rig import free_port
from tests.workers import ROOT

pytestmark = pytest.mark.system

LOGIN = ("ops", "flower-test-secret")


def procfile_command(process: str, **env: str) -> list[str]:
    """The Procfile's command for the process, its $VARIABLES expanded from env."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    [command] = [line.split(":", 1)[1] for line in lines if line.startswith(f"{process}:")]
    for name, value in env.items():
        command = command.replace(f"${name}", value)
    return shlex.split(command)


def answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True


@pytest.fixture
def flower(tmp_path):
    port = free_port()
    command = procfile_command("flower", FLOWER_BASIC_AUTH=":".join(LOGIN))
    assert command[:4] == ["celery", "-A", "config", "flower"]
    command = [sys.executable, "-m", *command]
    command = [f"--port={port}" if arg.startswith("--port=") else arg for arg in command]
    with open(tmp_path / "flower.log", "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "CELERY_BROKER_URL": app.conf.broker_url},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"flower did not answer; see {tmp_path / 'flower.log'}")
        time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(10)


def test_flower_refuses_requests_without_its_login_and_answers_with_it(flower):
    anonymous = [httpx.get(f"{flower}{path}") for path in ("/", "/api/workers", "/api/tasks")]
    wrong = httpx.get(f"{flower}/", auth=(LOGIN[0], "wrong"))
    logged_in = httpx.get(f"{flower}/workers", auth=LOGIN)

    assert [r.status_code for r in anonymous] == [401, 401, 401]
    assert anonymous[0].headers["WWW-Authenticate"] == 'Basic realm="flower"'
    assert wrong.status_code == 401
    assert logged_in.status_code == 200
    assert "Flower" in logged_in.text
