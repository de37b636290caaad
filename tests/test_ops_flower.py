"""Flower as the Procfile starts it, on a free port: nothing without the basic-auth login."""

import httpx
import pytest

from config.celery import app
from harness.ports import free_port, port_answers
from harness.processes import Child, interpreted
from harness.procfile import procfile_lines

pytestmark = pytest.mark.system

LOGIN = ("ops", "flower-test-secret")


@pytest.fixture
def flower(tmp_path):
    port = free_port()
    command = procfile_lines(env={"FLOWER_BASIC_AUTH": ":".join(LOGIN)})["flower"]
    assert command[:4] == ["celery", "-A", "config", "flower"]
    command = [f"--port={port}" if arg.startswith("--port=") else arg for arg in command]
    process = Child(
        "flower",
        interpreted(command),
        env={"CELERY_BROKER_URL": app.conf.broker_url},
        log_path=tmp_path / "flower.log",
        ready=lambda: port_answers("127.0.0.1", port),
    ).start(timeout=20)
    yield f"http://127.0.0.1:{port}"
    process.stop()


def test_flower_refuses_requests_without_its_login_and_answers_with_it(flower):
    anonymous = [httpx.get(f"{flower}{path}") for path in ("/", "/api/workers", "/api/tasks")]
    wrong = httpx.get(f"{flower}/", auth=(LOGIN[0], "wrong"))
    logged_in = httpx.get(f"{flower}/workers", auth=LOGIN)

    assert [r.status_code for r in anonymous] == [401, 401, 401]
    assert anonymous[0].headers["WWW-Authenticate"] == 'Basic realm="flower"'
    assert wrong.status_code == 401
    assert logged_in.status_code == 200
    assert "Flower" in logged_in.text
