"""Nightly payment reconciliation: money and orders that disagree, shown in the admin.

- paid but not fulfilled: an order paid a day ago whose pipeline has not finished;
- charged without a paid order: a capture the gateway holds, not refunded, for an
  order that does not exist, failed its payment, was cancelled, or holds another
  capture (a double charge).
A discrepancy stays open until a run no longer finds it.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from orders.models import Discrepancy, Order
from partners import payment_captures_list

FULFILMENT_GRACE = timedelta(hours=24)


def _paid_unfulfilled(now: datetime) -> dict[tuple, str]:
    stuck = Order.objects.filter(
        status__in=[Order.Status.PAID, Order.Status.NEEDS_ATTENTION],
        created_at__lt=now - FULFILMENT_GRACE,
    ).prefetch_related("steps")
    return {
        (Discrepancy.Kind.PAID_UNFULFILLED, order.number, ""): "unfinished steps: "
        + ", ".join(f"{s.name} ({s.status})" for s in order.steps.all() if s.status != "succeeded")
        for order in stuck
    }


def _charged_without_order(captures: list[dict]) -> dict[tuple, str]:
    captures = [c for c in captures if not c["refunded"]]
    orders = {
        o.number: o
        for o in Order.objects.filter(number__in=[c["order"] for c in captures]).only(
            "number", "status", "capture_id"
        )
    }
    found = {}
    for capture in captures:
        order = orders.get(capture["order"])
        if order is None:
            why = "no such order"
        elif order.status not in Order.PAID_STATUSES:
            why = f"the order is {order.status}"
        elif order.capture_id != capture["capture_id"]:
            why = f"the order holds another capture ({order.capture_id or 'none'})"
        else:
            continue
        found[(Discrepancy.Kind.CHARGED_NO_ORDER, capture["order"], capture["capture_id"])] = why
    return found


def payments_reconcile(*, now: datetime | None = None) -> list[Discrepancy]:
    """Record what disagrees now, resolve what no longer does; return the open ones."""
    captures = payment_captures_list()  # before the transaction: no lock held meanwhile
    with transaction.atomic():
        return _discrepancies_record(captures, now=now or timezone.now())


def _discrepancies_record(captures: list[dict], *, now: datetime) -> list[Discrepancy]:
    found = {**_paid_unfulfilled(now), **_charged_without_order(captures)}
    open_now = {
        (d.kind, d.order_number, d.capture_id): d
        for d in Discrepancy.objects.filter(resolved_at__isnull=True)
    }
    for key, discrepancy in open_now.items():
        if key not in found:
            discrepancy.resolved_at = now
            discrepancy.save(update_fields=["resolved_at"])
    for (kind, number, capture_id), details in found.items():
        if (kind, number, capture_id) not in open_now:
            Discrepancy.objects.create(
                kind=kind, order_number=number, capture_id=capture_id, details=details
            )
    return list(Discrepancy.objects.filter(resolved_at__isnull=True))
