"""Emails never go out twice (issue 16, finding 3), against a real SMTP server (aiosmtpd)
scripted to fail at each moment of a delivery.

Before, any exception put an outbox email back to pending: a timeout waiting for the
server's answer to the message (which it may have accepted) or during QUIT (after it
had), and the next run sent it again. Now an error before the server took the message
is retried; after it took it, or when nobody can tell, the row is marked
sent_unconfirmed, never resent, and listed for ops. Every email carries a Message-ID
made from its outbox row, the same on every attempt, so a receiver can tell a copy."""

import asyncio
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller

from harness.ports import free_port
from notifications.models import OutboxEmail
from notifications.services import email_enqueue, email_message_id, outbox_email_deliver

pytestmark = pytest.mark.django_db

TIMEOUT_S = 0.5


class ScriptedServer:
    """An aiosmtpd handler that keeps what it accepted and fails as `mode` says."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.accepted: list[bytes] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.mode == "refuse_recipient":
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.accepted.append(envelope.original_content)
        if self.mode == "no_answer_to_the_message":
            await asyncio.sleep(TIMEOUT_S * 6)  # taken, but the client stops waiting first
        return "250 OK queued"

    async def handle_QUIT(self, server, session, envelope):
        if self.mode == "quit_hangs":
            await asyncio.sleep(TIMEOUT_S * 6)
        return "221 Bye"


@pytest.fixture
def smtp(settings):
    handler = ScriptedServer()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "notifications.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = TIMEOUT_S
    yield handler
    controller.stop()


def owed(key: str = "test:1") -> OutboxEmail:
    """An outbox email owed and not yet sent (delivery happens when the test asks)."""
    return OutboxEmail.objects.create(
        key=key, kind="ops_alert", to="ops@shop.example", subject="Hello", body="Body"
    )


def test_an_email_whose_acceptance_answer_never_came_is_not_sent_again(smtp):
    smtp.mode = "no_answer_to_the_message"
    email = owed()

    first = outbox_email_deliver(email=email)
    smtp.mode = "ok"
    again = outbox_email_deliver(email=OutboxEmail.objects.get(pk=email.pk))

    assert len(smtp.accepted) == 1
    assert first == again == {"email": email.pk, "unconfirmed": True}
    assert OutboxEmail.objects.get(pk=email.pk).status == OutboxEmail.Status.SENT_UNCONFIRMED


def test_a_timeout_during_quit_after_the_server_took_the_email_counts_as_sent(smtp):
    smtp.mode = "quit_hangs"
    email = owed()

    outbox_email_deliver(email=email)
    smtp.mode = "ok"
    outbox_email_deliver(email=OutboxEmail.objects.get(pk=email.pk))

    assert len(smtp.accepted) == 1
    assert OutboxEmail.objects.get(pk=email.pk).status == OutboxEmail.Status.SENT


def test_an_email_refused_before_the_server_took_it_is_sent_on_the_next_try(smtp):
    smtp.mode = "refuse_recipient"
    email = owed()

    with pytest.raises(Exception, match="try again later"):
        outbox_email_deliver(email=email)
    assert OutboxEmail.objects.get(pk=email.pk).status == OutboxEmail.Status.PENDING
    smtp.mode = "ok"
    outbox_email_deliver(email=OutboxEmail.objects.get(pk=email.pk))

    assert len(smtp.accepted) == 1
    assert OutboxEmail.objects.get(pk=email.pk).status == OutboxEmail.Status.SENT


def test_every_email_carries_a_message_id_made_from_its_outbox_row(smtp):
    first = email_enqueue(key="test:a", template="ops_alert", to="a@shop.example", context={})
    second = email_enqueue(key="test:b", template="ops_alert", to="b@shop.example", context={})

    ids = [message_from_bytes(raw)["Message-ID"] for raw in smtp.accepted]

    assert ids == [email_message_id(first), email_message_id(second)]
    assert ids[0] != ids[1]
    assert email_message_id(first) == email_message_id(OutboxEmail.objects.get(pk=first.pk))
    assert ids[0].startswith("<") and ids[0].endswith("@shopflow.example>")
