"""Flower as the Procfile starts it, on a free port: nothing without the basic-auth login,
and no start at all without one (issue 15, finding 2)."""

import base64
import os
import subprocess

import httpx
import pytest

from config.celery import app
from harness.ports import free_port, port_answers
from harness.processes import Child, interpreted
from harness.procfile import ROOT, procfile_lines

pytestmark = pytest.mark.system

LOGIN = ("ops", "flower-test-secret")


def flower_command(port: int) -> list[str]:
    command = procfile_lines()["flower"]
    return interpreted([f"--port={port}" if a.startswith("--port=") else a for a in command])


@pytest.fixture
def flower(tmp_path):
    port = free_port()
    process = Child(
        "flower",
        flower_command(port),
        env={"CELERY_BROKER_URL": app.conf.broker_url, "FLOWER_BASIC_AUTH": ":".join(LOGIN)},
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


def test_an_empty_basic_credential_is_refused_by_a_configured_flower(flower):
    empty = {"Authorization": "Basic ="}
    colon_only = {"Authorization": "Basic " + base64.b64encode(b":").decode()}

    answers = [
        httpx.get(f"{flower}/api/workers", headers=empty),
        httpx.post(f"{flower}/api/task/async-apply/orders.payment_refund", headers=empty),
        httpx.get(f"{flower}/api/workers", headers=colon_only),
    ]

    assert [r.status_code for r in answers] == [401, 401, 401]


@pytest.mark.parametrize(
    ("credential", "message"),
    [
        (None, "FLOWER_BASIC_AUTH is not set: Flower would answer anyone."),
        ("", "FLOWER_BASIC_AUTH is not set: Flower would answer anyone."),
        ("ops", "FLOWER_BASIC_AUTH must be user:password (or several, comma-separated)."),
        ("ops:", "FLOWER_BASIC_AUTH must be user:password (or several, comma-separated)."),
        (":secret", "FLOWER_BASIC_AUTH must be user:password (or several, comma-separated)."),
    ],
    ids=["unset", "empty", "no-password", "empty-password", "empty-user"],
)
def test_flower_without_a_login_bypass_refuses_to_start_and_never_listens(credential, message):
    """The Procfile once passed `--basic-auth=` empty: Tornado read it as an empty login."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    env["CELERY_BROKER_URL"] = app.conf.broker_url
    if credential is not None:
        env["FLOWER_BASIC_AUTH"] = credential

    result = subprocess.run(
        flower_command(port), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 1
    assert result.stderr == f"flower refuses to start: {message}\n"
    assert not port_answers("127.0.0.1", port)
