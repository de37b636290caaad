from datetime import timedelta

import pytest
from django.utils import timezone

import partners
from orders.models import Discrepancy, Order
from orders.services.payment_report import payments_reconcile
from orders.tasks import payment_capture
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db


def open_discrepancies() -> list[tuple[str, str, str]]:
    return sorted(
        Discrepancy.objects.filter(resolved_at__isnull=True).values_list(
            "kind", "order_number", "details"
        )
    )


def test_a_capture_without_a_paid_order_and_a_day_old_unfulfilled_order_are_reported(sandbox):
    paid = order_place((product_create(), 1)).order
    payment_capture.apply(args=(paid.pk,))
    Order.objects.filter(pk=paid.pk).update(created_at=timezone.now() - timedelta(hours=25))
    # A capture whose step died before recording it; the order then failed its payment.
    lost = order_place((product_create(), 1)).order
    partners.payment_capture(
        order_number=lost.number,
        amount_cents=lost.total_cents,
        currency="EUR",
        payment_token="tok_visa",
    )
    Order.objects.filter(pk=lost.pk).update(status=Order.Status.PAYMENT_FAILED)

    open_now = payments_reconcile()

    assert len(open_now) == 2
    assert open_discrepancies() == [
        ("charged_no_order", lost.number, "the order is payment_failed"),
        (
            "paid_unfulfilled",
            paid.number,
            "unfinished steps: confirmation_email_send (queued), erp_sync (queued), "
            "invoice_render (queued), label_purchase (pending), analytics_track (queued)",
        ),
    ]


def test_a_discrepancy_is_recorded_once_and_resolved_when_it_no_longer_holds(sandbox):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    Order.objects.filter(pk=order.pk).update(capture_id="cap_other")

    payments_reconcile()
    payments_reconcile()
    Order.objects.filter(pk=order.pk).update(
        capture_id=order.steps.get(name="payment_capture").result["capture_id"]
    )
    payments_reconcile()

    [discrepancy] = Discrepancy.objects.all()
    assert discrepancy.details == "the order holds another capture (cap_other)"
    assert discrepancy.resolved_at is not None
