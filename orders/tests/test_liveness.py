"""Who holds a claim, as people read it, and claims stamped with the database's clock."""

import os
import socket
import threading
from datetime import timedelta

import pytest
import time_machine

from bulkjobs.services import bulk_job_claim
from engine.liveness import claim_owner, database_now
from notifications.models import OutboxEmail
from notifications.services import outbox_email_claim
from orders.models import OrderExport


def _claim_in_a_thread(release: threading.Event) -> tuple[threading.Thread, str]:
    claimed = []
    ready = threading.Event()

    def run() -> None:
        claimed.append(claim_owner())
        ready.set()
        release.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    ready.wait(10)
    return thread, claimed[0]


def test_a_claim_made_in_the_main_thread_names_the_host_and_the_process():
    assert claim_owner() == f"{socket.gethostname()}:{os.getpid()}"


def test_a_claim_made_in_another_thread_names_the_thread_too():
    release = threading.Event()
    thread, claim = _claim_in_a_thread(release)
    release.set()
    thread.join()

    assert claim == f"{socket.gethostname()}:{os.getpid()}/{thread.ident}"


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


def test_a_claim_stuck_on_the_database_never_stops_the_heartbeats_sweep_from_judging_leases():
    # The sweep asks holder_gone of every running row of this machine, this process's
    # own included. It waited for a claim in flight to record its hold, so one claim
    # stuck on the database (a connect without answer, a lock queue) stopped the
    # heartbeat thread, every lease of the process lapsed, and other workers ran the
    # steps a second time.
    from engine.liveness import holder_gone, lease_claiming, lease_holder
    from orders.models import Step

    claiming, release = threading.Event(), threading.Event()

    def stuck_claim() -> None:
        with lease_claiming():
            claiming.set()
            release.wait()

    claim = threading.Thread(target=stuck_claim, daemon=True)
    claim.start()
    claiming.wait()
    judged: list[bool] = []
    sweep = threading.Thread(
        target=lambda: judged.append(holder_gone(Step, pk=1, holder=lease_holder(), token=7)),
        daemon=True,
    )
    try:
        sweep.start()
        sweep.join(timeout=30)

        # Not gone: a claim being recorded may be this row's; its expiry decides.
        assert judged == [False]
    finally:
        release.set()
        claim.join()
        sweep.join()
