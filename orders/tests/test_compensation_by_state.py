"""Compensation decided by state (issue 14, findings 2-5): when a cancelled order's
forward step reaches its final state, the undo of every effect that is or may be in
place is made; waiting is never an attempt; an ended order never changes to another
ended status, and a cancelled order sends one email. Against the real sandbox."""

import pytest
from django.core import mail

import partners
from engine.dead_letters import dead_letters_retry
from engine.steps import PoisonPill, step_claim, step_defer, step_mark_failed, step_mark_succeeded
from fulfillment.services import order_erp_sync
from fulfillment.tasks import erp_cancel, erp_sync, label_purchase, label_void
from orders.models import Order
from orders.pipeline import FORWARD_NAMES
from orders.services.orders import OrderNotCancellable, order_cancel
from orders.tasks import (
    cancellation_email_send,
    payment_capture,
    payment_failed_email_send,
    payment_refund,
)
from tests.factories import order_place, product_create
from tests.steps import answers_lost, deliver, effects

pytestmark = pytest.mark.django_db

FORWARD = {
    "payment_capture": payment_capture,
    "erp_sync": erp_sync,
    "label_purchase": label_purchase,
}
UNDO = {"payment_capture": payment_refund, "erp_sync": erp_cancel, "label_purchase": label_void}
# The partner, the forward effect's kind and its undo's kind in the ledger.
LEDGER = {
    "payment_capture": ("payment", "capture", "refund"),
    "erp_sync": ("erp", "order_sync", "order_cancel"),
    "label_purchase": ("carrier", "label", "label_void"),
}


def partner_acts(order: Order, forward: str) -> None:
    """The forward step's call, made at the partner and nothing recorded of it here."""
    if forward == "payment_capture":
        partners.payment_capture(
            order_number=order.number,
            amount_cents=order.total_cents,
            currency=order.currency,
            payment_token=order.payment_token,
        )
    elif forward == "erp_sync":
        partners.erp_sync(order_number=order.number, lines=[], total_cents=order.total_cents)
    else:
        partners.label_purchase(
            order_number=order.number, erp_reference="ERP-1", address=order.shipping_address
        )


def paid_up_to(order: Order, name: str) -> None:
    """Run the forward steps that come before `name` (payment, then the ERP sync)."""
    for before in ("payment_capture", "erp_sync"):
        if before == name:
            return
        FORWARD[before].apply(args=(order.pk,))


def names(order: Order) -> set[str]:
    return set(order.steps.values_list("name", flat=True))


def undo_step(order: Order, forward: str) -> str:
    return UNDO[forward].name.partition(".")[2]


@pytest.mark.parametrize("forward", list(FORWARD))
def test_cancel_undoes_a_forward_step_that_failed_after_sending(sandbox, forward):
    """Finding 2: the worker died after the partner acted (a poison pill)."""
    order = order_place((product_create(), 1)).order
    paid_up_to(order, forward)
    _, step = step_claim(subject_id=order.pk, name=forward, task_id="dies-after-sending")
    # The partner acts; the worker dies before it records anything, and again until the
    # step is a poison pill.
    partner, kind, undone = LEDGER[forward]
    effects_before = effects(sandbox, partner)
    partner_acts(order, forward)
    step_mark_failed(step=step, error=PoisonPill(step))

    order_cancel(order_id=order.pk, by_staff=True)
    assert undo_step(order, forward) in names(order)
    UNDO[forward].apply(args=(order.pk,))

    order.refresh_from_db()
    assert order.status == "cancelled"
    assert effects(sandbox, partner)[len(effects_before) :] == [
        (kind, order.number),
        (undone, order.number),
    ]
    assert order.steps.get(name=undo_step(order, forward)).status == "succeeded"


def test_cancel_undoes_a_forward_step_whose_answer_was_lost(sandbox):
    """Finding 2: the ERP synced the order, the answer never came; the step waits to ask."""
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    answers_lost(sandbox, effects=600, lookups=0)
    deliver(erp_sync, order)
    answers_lost(sandbox, effects=0, lookups=0)

    order_cancel(order_id=order.pk, by_staff=True)
    erp_cancel.apply(args=(order.pk,))
    erp_sync.apply(args=(order.pk,))  # its retry arrives: it never runs again

    statuses = dict(order.steps.values_list("name", "status"))
    assert (statuses["erp_sync"], statuses["erp_cancel"]) == ("cancelled", "succeeded")
    assert order.steps.get(name="erp_cancel").result == {"cancelled": "ERP-10000001"}
    assert effects(sandbox, "erp") == [
        ("order_sync", order.number),
        ("order_cancel", order.number),
    ]


def test_cancel_makes_no_undo_for_a_step_that_surely_did_nothing(sandbox):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    sandbox.post("/control", json={"failure_rate": 1.0}).raise_for_status()
    deliver(erp_sync, order)  # a 503: the ERP did nothing

    order_cancel(order_id=order.pk, by_staff=True)

    assert order.steps.get(name="erp_sync").status == "cancelled"
    assert "erp_cancel" not in names(order)
    assert {"payment_refund", "cancellation_email_send"} <= names(order)


def test_a_dead_letter_retried_then_cancelled_still_undoes_its_earlier_effect(sandbox):
    """Finding 3: the retry resets attempts; the cancel before it runs must not forget
    what the step's earlier life did at the ERP."""
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    _, step = step_claim(subject_id=order.pk, name="erp_sync", task_id="dies-after-sending")
    partners.erp_sync(order_number=order.number, lines=[], total_cents=order.total_cents)
    step_mark_failed(step=step, error=PoisonPill(step))

    report = dead_letters_retry(step_ids=[step.pk])
    retried = order.steps.get(name="erp_sync")
    assert (report.retried, retried.status, retried.attempts) == (
        [(order.number, "erp_sync")],
        "queued",
        0,
    )
    # Fulfilment began in the step's first life: the customer can no longer cancel.
    with pytest.raises(OrderNotCancellable):
        order_cancel(order_id=order.pk)
    order_cancel(order_id=order.pk, by_staff=True)
    erp_cancel.apply(args=(order.pk,))
    erp_sync.apply(args=(order.pk,))

    statuses = dict(order.steps.values_list("name", "status"))
    assert (statuses["erp_sync"], statuses["erp_cancel"]) == ("cancelled", "succeeded")
    assert effects(sandbox, "erp") == [
        ("order_sync", order.number),
        ("order_cancel", order.number),
    ]


def test_an_undo_is_made_when_its_running_forward_step_finishes_without_waiting(sandbox):
    """Finding 4: no undo polls its forward step (spending attempts) while it still runs;
    the undo is made once the forward step has finished, however late."""
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    _, running = step_claim(subject_id=order.pk, name="erp_sync", task_id="still-running")

    order_cancel(order_id=order.pk, by_staff=True)
    assert "erp_cancel" not in names(order)  # nothing to wait for, nothing to spend
    step_mark_succeeded(step=running, result=order_erp_sync(running.order))

    undo = order.steps.get(name="erp_cancel")
    assert (undo.status, undo.attempts) == ("pending", 0)
    erp_cancel.apply(args=(order.pk,))
    undo.refresh_from_db()
    assert (undo.status, undo.attempts) == ("succeeded", 1)
    assert effects(sandbox, "erp") == [
        ("order_sync", order.number),
        ("order_cancel", order.number),
    ]


def test_a_breaker_deferred_forward_step_of_a_cancelled_order_never_acts_later(sandbox):
    """Finding 4: a step the breaker put off must not act after the cancel's undo."""
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    deliver(erp_sync, order)
    answers_lost(sandbox, effects=600, lookups=0)
    deliver(label_purchase, order)  # the carrier made a label; no answer came
    answers_lost(sandbox, effects=0, lookups=0)
    assert step_defer(subject_id=order.pk, name="label_purchase", seconds=720, reason="open")

    order_cancel(order_id=order.pk, by_staff=True)
    label_void.apply(args=(order.pk,))
    label_purchase.apply(args=(order.pk,))  # the deferred message, 12 minutes later

    statuses = dict(order.steps.values_list("name", "status"))
    assert (statuses["label_purchase"], statuses["label_void"]) == ("cancelled", "succeeded")
    assert effects(sandbox, "carrier") == [("label", order.number), ("label_void", order.number)]


def test_a_cancelled_order_whose_retrying_payment_is_declined_stays_cancelled_with_one_email(
    sandbox,
):
    """Finding 5: the payment was retrying when the customer cancelled; then declined."""
    order = order_place((product_create(stock=5), 1), payment_token="tok_decline").order
    sandbox.post("/control", json={"failure_rate": 1.0}).raise_for_status()
    deliver(payment_capture, order)
    sandbox.post("/control", json={"failure_rate": 0.0}).raise_for_status()

    order_cancel(order_id=order.pk)
    payment_capture.apply(args=(order.pk,))
    for task in (cancellation_email_send, payment_failed_email_send):
        if task.name.partition(".")[2] in names(order):
            task.apply(args=(order.pk,))

    order.refresh_from_db()
    assert order.status == "cancelled"
    assert order.steps.get(name="payment_capture").status == "cancelled"
    assert "payment_failed_email_send" not in names(order)
    assert [m.subject for m in mail.outbox] == [f"Your order {order.number} is cancelled"]


def test_a_payment_declined_while_running_after_the_cancel_leaves_the_order_cancelled(sandbox):
    """Finding 5: the decline lands while the cancel is committed: no flip, no email."""
    order = order_place((product_create(), 1), payment_token="tok_decline").order
    _, running = step_claim(subject_id=order.pk, name="payment_capture", task_id="running")
    order_cancel(order_id=order.pk)

    declined = partners.PartnerRejected("payment", 402, {"error": "card_declined"})
    step_mark_failed(step=running, error=declined)

    order.refresh_from_db()
    assert order.status == "cancelled"
    # The gateway said no: no refund to make, no payment-failed email.
    assert names(order) == {*FORWARD_NAMES, "cancellation_email_send"}
