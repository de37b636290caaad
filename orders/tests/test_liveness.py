"""Whether the process (or, in a pool of threads, the thread) that claimed a step lives."""

import os
import socket
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
import time_machine

from bulkjobs.services import bulk_job_claim
from engine.liveness import claimer_alive, database_now, this_process
from notifications.models import OutboxEmail
from notifications.services import outbox_email_claim
from orders.models import OrderExport


def _claim_in_a_thread(release: threading.Event) -> tuple[threading.Thread, str]:
    claimed = []
    ready = threading.Event()

    def run() -> None:
        claimed.append(this_process())
        ready.set()
        release.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    ready.wait(10)
    return thread, claimed[0]


def test_a_claim_made_in_the_main_thread_names_the_host_and_the_process():
    assert this_process() == f"{socket.gethostname()}:{os.getpid()}"


def test_a_claim_made_in_another_thread_names_the_thread_too():
    release = threading.Event()
    thread, claim = _claim_in_a_thread(release)
    release.set()
    thread.join()

    assert claim == f"{socket.gethostname()}:{os.getpid()}/{thread.ident}"


def test_a_claim_of_another_running_thread_of_this_process_is_alive_until_it_ends():
    release = threading.Event()
    thread, claim = _claim_in_a_thread(release)

    alive_while_running = claimer_alive(claim, claimed_at=None)
    release.set()
    thread.join()

    assert (alive_while_running, claimer_alive(claim, claimed_at=None)) == (True, False)


def test_the_asking_threads_own_earlier_claim_is_over():
    answers = []

    def run() -> None:
        answers.append(claimer_alive(this_process(), claimed_at=None))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()

    assert answers == [False]


def test_a_claim_of_this_process_made_in_its_main_thread_is_over():
    assert claimer_alive(this_process(), claimed_at=None) is False


def test_a_claim_of_a_live_process_on_this_host_is_alive_and_of_a_dead_one_is_over():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    claim = f"{socket.gethostname()}:{child.pid}"
    alive = claimer_alive(claim, claimed_at=None)
    child.kill()
    child.wait()

    assert (alive, claimer_alive(claim, claimed_at=None)) == (True, False)


@pytest.mark.django_db
def test_a_claim_from_another_host_is_judged_on_the_databases_clock_not_a_clock_hours_ahead():
    claimed_at = database_now()
    fast = claimed_at + timedelta(hours=2)  # far past the task time limit

    with time_machine.travel(fast, tick=False):
        alive = claimer_alive("another-host:4242", claimed_at=claimed_at)

    assert alive is True


@pytest.mark.django_db
def test_outbox_and_export_claims_are_stamped_with_the_databases_clock_not_the_workers(
    django_user_model, settings
):
    email = OutboxEmail.objects.create(
        key="clock:1", kind="order_confirmation", to="a@example.com", subject="s", body="b"
    )
    requester = django_user_model.objects.create_user("clerk", "clerk@example.com", "pw")
    export = OrderExport.objects.create(requester=requester, filters={})
    slow = database_now() - timedelta(hours=2)

    with time_machine.travel(slow, tick=False):
        assert outbox_email_claim(email=email)
        assert bulk_job_claim(job=export)

    email.refresh_from_db()
    export.refresh_from_db()
    now = database_now()
    lease = timedelta(seconds=settings.STEP_LEASE_S)
    assert now + lease - timedelta(minutes=1) < email.lease_expires_at <= now + lease
    assert now + lease - timedelta(minutes=1) < export.lease_expires_at <= now + lease
