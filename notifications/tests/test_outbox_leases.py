"""An outbox email is claimed with a lease (engine/leases.py): a sender that cannot record
what it did leaves the email to the next run once its lease is over, never held by a live
thread; a lease that lives keeps every other sender off."""

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.db import OperationalError
from django.db.models import QuerySet
from django.db.models.functions import Now

from engine.heartbeat import leases_renew
from engine.leases import lease_write
from engine.liveness import database_now, leases_held
from notifications.models import OutboxEmail
from notifications.services import EmailInFlight, outbox_email_claim, outbox_email_deliver

pytestmark = pytest.mark.django_db(transaction=True)

# A holder on another machine: no process here can probe it, only its lease tells.
ELSEWHERE = "0123456789ab/4242/feedfacecafe"


@pytest.fixture(autouse=True)
def quick_write_retries():
    with mock.patch("engine.leases.WRITE_DELAYS_S", (0, 0)):
        yield


def owed(key: str = "lease:1") -> OutboxEmail:
    return OutboxEmail.objects.create(
        key=key, kind="ops_alert", to="ops@shop.example", subject="s", body="b"
    )


def sent_write_fails():
    """Every write that would record an email as sent raises, as a dropped connection does."""
    update = QuerySet.update

    def failing(self, **fields):
        if self.model is OutboxEmail and fields.get("status") == "sent":
            raise OperationalError("server closed the connection unexpectedly")
        return update(self, **fields)

    return mock.patch.object(QuerySet, "update", failing)


def test_an_email_whose_sent_write_fails_while_its_thread_lives_is_sent_by_the_next_run():
    email = owed()
    failed, release = threading.Event(), threading.Event()
    errors = []

    def sender() -> None:  # a thread of a pool: it lives on after its task ends
        try:
            outbox_email_deliver(email=OutboxEmail.objects.get(pk=email.pk))
        except Exception as exc:
            errors.append(type(exc).__name__)
        failed.set()
        release.wait(30)

    thread = threading.Thread(target=sender)
    with sent_write_fails():
        thread.start()
        failed.wait(30)
    try:
        row = OutboxEmail.objects.get(pk=email.pk)
        assert (row.status, len(mail.outbox)) == ("sending", 1)
        assert email.pk not in leases_held(OutboxEmail)  # its lease is left to lapse
        assert leases_renew() == 0

        outbox_email_deliver(email=row)  # the next run, while the first thread lives
    finally:
        release.set()
        thread.join()

    assert errors == ["LeaseWriteFailed"]
    assert OutboxEmail.objects.get(pk=email.pk).status == "sent"
    assert len(mail.outbox) == 2  # at least once: the first may have gone out


def test_an_email_under_a_live_lease_of_another_machine_is_not_sent_until_the_lease_lapses():
    email = owed()
    OutboxEmail.objects.filter(pk=email.pk).update(
        status="sending",
        lease_holder=ELSEWHERE,
        lease_token=1,
        lease_expires_at=Now() + timedelta(seconds=30),
    )

    with pytest.raises(EmailInFlight):
        outbox_email_deliver(email=OutboxEmail.objects.get(pk=email.pk))
    assert mail.outbox == []

    OutboxEmail.objects.filter(pk=email.pk).update(lease_expires_at=Now() - timedelta(seconds=1))
    outbox_email_deliver(email=OutboxEmail.objects.get(pk=email.pk))

    row = OutboxEmail.objects.get(pk=email.pk)
    assert (row.status, row.lease_token, row.lease_expires_at) == ("sent", 2, None)
    assert len(mail.outbox) == 1


def test_a_stale_senders_sent_write_is_fenced_off_and_changes_nothing():
    email = owed()
    stale = outbox_email_claim(email=email)
    OutboxEmail.objects.filter(pk=email.pk).update(lease_expires_at=Now() - timedelta(seconds=1))
    live = outbox_email_claim(email=email)  # the stale sender stalled past its lease

    written = lease_write(stale, "email back to pending", status="pending")

    assert (stale.token, live.token, written) == (1, 2, False)
    row = OutboxEmail.objects.get(pk=email.pk)
    assert (row.status, row.lease_token) == ("sending", 2)
    assert row.lease_expires_at > database_now()
    assert leases_held(OutboxEmail)[email.pk][0] == 2  # the live lease is still renewed


def test_a_second_claim_in_the_same_process_leaves_the_live_lease_held_and_renewed():
    email = owed()
    first = outbox_email_claim(email=email)  # a thread of a pool sending it

    again = outbox_email_claim(email=email)  # a duplicate delivery on another thread

    assert (first.token, again) == (1, None)
    assert leases_held(OutboxEmail)[email.pk][0] == 1
    with pytest.raises(EmailInFlight):  # and a third run still finds it alive
        outbox_email_deliver(email=OutboxEmail.objects.get(pk=email.pk))


def test_an_email_claim_is_a_lease_on_the_databases_clock_renewed_by_the_heartbeat(settings):
    email = owed()

    lease = outbox_email_claim(email=email)
    OutboxEmail.objects.filter(pk=email.pk).update(lease_expires_at=Now() + timedelta(seconds=1))
    renewed = leases_renew()

    row = OutboxEmail.objects.get(pk=email.pk)
    left = (row.lease_expires_at - database_now()).total_seconds()
    assert (renewed, lease.token, row.status) == (1, 1, "sending")
    assert settings.STEP_LEASE_S - 5 < left <= settings.STEP_LEASE_S
