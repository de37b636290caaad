"""The outbox's one entry point: an email owed once per key, rendered from its template,
sent after the owing transaction commits."""

import ast
from pathlib import Path

import pytest
from django.core import mail
from django.db import connection, transaction
from django.template.loader import get_template

from notifications.models import OutboxEmail
from notifications.services import email_enqueue
from tests.outbox import senders_race

pytestmark = pytest.mark.django_db


def alert_email(key: str = "alert:1", message: str = "3 dead letters") -> OutboxEmail:
    return email_enqueue(
        key=key,
        template=OutboxEmail.Kind.OPS_ALERT,
        to="ops@shop.example",
        context={"title": "dead letters above threshold", "subject": "all", "message": message},
    )


def test_a_second_enqueue_with_the_same_key_sends_nothing():
    first = alert_email(message="3 dead letters")

    second = alert_email(message="4 dead letters")

    assert second.pk == first.pk
    [message] = mail.outbox
    assert (message.to, message.subject, message.body) == (
        ["ops@shop.example"],
        "[shopflow alert] dead letters above threshold: all",
        "3 dead letters",
    )
    assert list(OutboxEmail.objects.values_list("key", "kind", "status", "body")) == [
        ("alert:1", "ops_alert", "sent", "3 dead letters")
    ]


def test_an_email_owed_inside_a_transaction_is_sent_after_it_commits(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            email = alert_email()
            assert (email.status, mail.outbox) == ("pending", [])

    assert len(callbacks) == 1
    assert [m.body for m in mail.outbox] == ["3 dead letters"]
    email.refresh_from_db()
    assert email.status == "sent"


def test_an_email_owed_in_a_transaction_that_rolls_back_is_never_sent(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            alert_email()
            raise RuntimeError("the work that owed the email failed")

    assert callbacks == []
    assert mail.outbox == []
    assert not OutboxEmail.objects.exists()


def test_text_is_not_html_escaped_and_the_html_body_is():
    order = {"number": "SF-1", "shipping_address": {"name": "O'Brien & <Sons>"}}

    email = email_enqueue(
        key="order:SF-1:review_request",
        template=OutboxEmail.Kind.REVIEW_REQUEST,
        to="ob@example.com",
        context={"order": order, "lines": [{"name": "Mug"}]},
    )

    assert email.subject == "How do you like your order SF-1?"
    assert email.body.startswith("Hello O'Brien & <Sons>,\n")
    assert "<p>Hello O&#x27;Brien &amp; &lt;Sons&gt;,</p>" in email.html
    [(html, mimetype)] = mail.outbox[0].alternatives
    assert (html, mimetype) == (email.html, "text/html")


def test_every_outbox_email_kind_has_a_subject_and_a_text_template():
    missing = []
    for kind in OutboxEmail.Kind.values:
        for suffix in (".subject.txt", ".txt"):
            try:
                get_template(f"notifications/email/{kind}{suffix}")
            except Exception as exc:  # TemplateDoesNotExist, TemplateSyntaxError
                missing.append(f"{kind}{suffix}: {type(exc).__name__}")
    assert missing == []


@pytest.mark.django_db(transaction=True)
def test_three_senders_owing_one_key_at_once_make_one_row_and_one_email(monkeypatch):
    assert connection.vendor == "postgresql", "the unique key is tested on PostgreSQL"

    outcomes = senders_race(monkeypatch, lambda: alert_email().pk, senders=3)

    [email] = OutboxEmail.objects.all()
    assert len(outcomes) == 3 and set(outcomes) <= {email.pk, "EmailInFlight"}
    assert [m.subject for m in mail.outbox] == [
        "[shopflow alert] dead letters above threshold: all"
    ]
    assert email.status == "sent"


NOTIFICATIONS = Path(__file__).resolve().parent.parent
# The apps that send email; the outbox serves them and knows nothing of them. (alerts.py
# reads dead letters and queues for ops, and moves with ops out of notifications.)
SENDERS = ("shop", "fulfillment", "orders.models", "orders.services", "orders.selectors")


def test_the_outbox_imports_nothing_from_the_apps_that_send():
    found = []
    for path in sorted(NOTIFICATIONS.rglob("*.py")):
        if "tests" in path.parts or path.name == "alerts.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [
                f"{path.relative_to(NOTIFICATIONS)}: {name}"
                for name in names
                if any(name == s or name.startswith(f"{s}.") for s in SENDERS)
            ]
    assert found == []
