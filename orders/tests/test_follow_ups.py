from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import transaction
from django.utils import timezone

from orders.lock_objects import order_for_update
from orders.models import FollowUp, LoyaltyAccount
from orders.services.follow_ups import follow_ups_due_run
from orders.services.orders import order_cancel
from orders.services.partner_events import order_delivery_record
from orders.tasks import run_follow_ups
from tests.factories import order_place, product_create, run_pipeline

pytestmark = pytest.mark.django_db


def completed_order(sandbox):
    order = order_place((product_create(price_cents=2550), 2)).order
    run_pipeline(order)
    order.refresh_from_db()
    assert order.status == "completed"
    return order


def test_a_completed_order_with_no_delivery_reported_gets_its_review_request_after_14_days(
    sandbox,
):
    order = completed_order(sandbox)
    completed = FollowUp.objects.get(order=order, kind="loyalty_points").due_at - timedelta(days=14)
    mail.outbox.clear()

    seen = []
    for days in (6, 7, 13, 14, 30):
        with time_machine.travel(completed + timedelta(days=days, seconds=1), tick=False):
            run_follow_ups.apply()
            follow_ups_due_run()  # twice at the same moment: nothing more happens
        account = LoyaltyAccount.objects.filter(email=order.email).first()
        seen.append((days, len(mail.outbox), account.points if account else 0))

    assert seen == [(6, 0, 0), (7, 0, 0), (13, 0, 0), (14, 1, 51), (30, 1, 51)]
    assert mail.outbox[0].subject == f"How do you like your order {order.number}?"
    assert set(order.follow_ups.values_list("status", flat=True)) == {"done"}


def test_cancelling_a_completed_order_cancels_its_follow_ups(sandbox):
    order = completed_order(sandbox)
    mail.outbox.clear()

    order_cancel(order_id=order.pk, by_staff=True)  # completed: only staff cancel it
    ran = follow_ups_due_run(now=timezone.now() + timedelta(days=30))

    assert ran == 0
    assert set(order.follow_ups.values_list("status", flat=True)) == {"cancelled"}
    assert not LoyaltyAccount.objects.filter(points__gt=0).exists()
    assert not [m for m in mail.outbox if "How do you like" in m.subject]


def test_a_delivered_order_gets_its_review_request_7_days_after_the_delivery(sandbox):
    order = completed_order(sandbox)
    delivered = timezone.now() + timedelta(days=2)
    with transaction.atomic():
        order_delivery_record(
            order=order_for_update(order_id=order.pk).get(), state="delivered", at=delivered
        )
    mail.outbox.clear()

    before = follow_ups_due_run(now=delivered + timedelta(days=6, hours=23))
    on_time = follow_ups_due_run(now=delivered + timedelta(days=7, seconds=1))

    review = FollowUp.objects.get(order=order, kind="review_request")
    assert (before, review.status, review.due_at) == (0, "done", delivered + timedelta(days=7))
    assert on_time == 1
    assert [m.subject for m in mail.outbox] == [f"How do you like your order {order.number}?"]


def test_a_parcel_returned_to_sender_gets_no_review_request(sandbox):
    order = completed_order(sandbox)
    with transaction.atomic():
        order_delivery_record(
            order=order_for_update(order_id=order.pk).get(), state="returned", at=timezone.now()
        )
    mail.outbox.clear()

    follow_ups_due_run(now=timezone.now() + timedelta(days=15))

    assert FollowUp.objects.get(order=order, kind="review_request").status == "cancelled"
    assert not [m for m in mail.outbox if "How do you like" in m.subject]
