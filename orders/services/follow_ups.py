"""Follow-ups of a completed order, as rows with due times picked up by a periodic job:
a review request REVIEW_REQUEST_AFTER_DELIVERY_DAYS (7) after the carrier reports the
parcel delivered (webhooks/), or REVIEW_REQUEST_DELIVERY_WAIT_DAYS (14) after the order
completed (its label bought) when no delivery is reported by then; none for a parcel
returned to sender. Loyalty points once the 14-day return window has passed. A cancel
before then cancels them."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F

from engine.due_rows import DueRows, due_row_finish
from engine.leases import Lease
from notifications.models import OutboxEmail
from orders.models import FollowUp, LoyaltyAccount, LoyaltyEntry, Order
from orders.services.emails import order_email_send


def _delays() -> dict[str, timedelta]:
    return {
        FollowUp.Kind.REVIEW_REQUEST: timedelta(days=settings.REVIEW_REQUEST_DELIVERY_WAIT_DAYS),
        FollowUp.Kind.LOYALTY_POINTS: timedelta(days=14),
    }


def follow_ups_schedule(*, order_id: int, completed_at: datetime) -> None:
    """Schedule the follow-ups; a review request a delivery already scheduled stays."""
    FollowUp.objects.bulk_create(
        (
            FollowUp(order_id=order_id, kind=kind, due_at=completed_at + delay)
            for kind, delay in _delays().items()
        ),
        ignore_conflicts=True,
    )


def review_request_reschedule(*, order_id: int, due_at: datetime) -> None:
    """The parcel was delivered: the review request is due at `due_at`, unless it has
    already run (or the order was cancelled)."""
    FollowUp.objects.bulk_create(
        [FollowUp(order_id=order_id, kind=FollowUp.Kind.REVIEW_REQUEST, due_at=due_at)],
        ignore_conflicts=True,
    )
    FollowUp.objects.filter(
        order_id=order_id, kind=FollowUp.Kind.REVIEW_REQUEST, status=FollowUp.Status.PENDING
    ).update(due_at=due_at)


def follow_ups_cancel(*, order_id: int) -> int:
    return FollowUp.objects.filter(order_id=order_id, status=FollowUp.Status.PENDING).update(
        status=FollowUp.Status.CANCELLED
    )


def follow_ups_due_run(*, now: datetime | None = None, limit: int = 500) -> int:
    """Run the follow-ups that are due (or whose run died); return how many ran."""
    return sum(DUE_FOLLOW_UPS.run(now=now, limit=limit).values())


def _follow_up_run(lease: Lease, now: datetime) -> str:
    follow_up = FollowUp.objects.select_related("order").get(pk=lease.pk)
    order = follow_up.order
    returned = order.delivery_state == Order.DeliveryState.RETURNED
    if order.status != Order.Status.COMPLETED or (
        follow_up.kind == FollowUp.Kind.REVIEW_REQUEST and returned
    ):
        return due_row_finish(lease=lease, status=FollowUp.Status.CANCELLED, now=now)
    if follow_up.kind == FollowUp.Kind.REVIEW_REQUEST:
        order_email_send(order=order, kind=OutboxEmail.Kind.REVIEW_REQUEST)
    else:
        loyalty_points_award(order=order)
    return due_row_finish(lease=lease, status=FollowUp.Status.DONE, now=now)


DUE_FOLLOW_UPS = DueRows(model=FollowUp, work=_follow_up_run)


@transaction.atomic
def loyalty_points_award(*, order: Order) -> int:
    """Credit one point per whole currency unit of the order, once per order."""
    account, _ = LoyaltyAccount.objects.get_or_create(email=order.email)
    points = order.total_cents // 100
    _, created = LoyaltyEntry.objects.get_or_create(
        order=order, defaults={"account": account, "points": points}
    )
    if created:
        LoyaltyAccount.objects.filter(pk=account.pk).update(points=F("points") + points)
    return points if created else 0
