"""The migrations that put FollowUp and LifecycleStep on the one due-row model (and give
ProductImage a claim) keep every row, with its status, due time and finish time; a claim
made then is a lease now until the old stale window's end (orders 0015, shop 0010)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from orders.models import FollowUp
from shop.models import LifecycleStep, ProductImage

DUE_ROWS = {"orders": "0010_follow_up_due_row", "shop": "0007_due_rows"}
DUE = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
DONE = datetime(2026, 3, 1, 10, 5, tzinfo=UTC)
LEASED = DUE + timedelta(minutes=10)  # claimed at DUE: the old stale window


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()  # what was just applied, for the next state asked for
    return executor.loader.project_state(targets).apps


def _before(app: str) -> tuple[str, str]:
    """The migration of the app that the due-row migration follows."""
    graph = MigrationExecutor(connection).loader.graph
    (parent,) = (p for p in graph.node_map[(app, DUE_ROWS[app])].parents if p.key[0] == app)
    return parent.key


@pytest.mark.django_db(transaction=True)
def test_follow_ups_lifecycle_steps_and_images_are_kept_by_the_due_row_migrations():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    before = [_before("orders"), _before("shop")]
    old = migrate([node for node in latest if node[0] not in DUE_ROWS] + before)
    try:
        order = old.get_model("orders", "Order").objects.create(
            number="SF-MIGRATE1",
            token="migrate-1",
            email="ada@example.com",
            shipping_address={},
            payment_token="tok_visa",
            currency="EUR",
            total_cents=1000,
        )
        done = {"due_at": DUE, "status": "done", "claimed_at": DUE, "done_at": DONE}
        died = {"due_at": DUE, "claimed_at": DUE}  # a run took it and died
        follow_up = old.get_model("orders", "FollowUp").objects
        follow_ups = [
            follow_up.create(order=order, kind="review_request", **done),
            follow_up.create(order=order, kind="loyalty_points", status="pending", **died),
        ]
        product = old.get_model("shop", "Product").objects.create(
            sku="MIG-1", name="Coffee club", price_cents=1500, is_subscription=True
        )
        subscription = old.get_model("shop", "Subscription").objects.create(
            email="ada@example.com", name="Ada", product=product, status="cancelled", cycle=1
        )
        step = old.get_model("shop", "LifecycleStep").objects.create
        steps = [
            step(subscription=subscription, cycle=1, kind="winback", **done),
            step(subscription=subscription, cycle=1, kind="freeze", status="running", **died),
            step(
                subscription=subscription, cycle=1, kind="archive", due_at=DUE, status="cancelled"
            ),
        ]
        image = old.get_model("shop", "ProductImage").objects
        images = [
            image.create(
                product=product,
                source_url="https://img.example/a.png",
                status="failed",
                attempts=2,
                next_attempt_at=DUE,
                last_error="HTTP 503",
            ),
            image.create(
                product=product,
                source_url="https://img.example/b.png",
                status="downloaded",
                attempts=1,
                next_attempt_at=DUE,
                downloaded_at=DONE,
                file="products/b.png",
            ),
        ]
    finally:
        migrate(latest)

    assert list(
        FollowUp.objects.order_by("pk").values_list(
            "pk",
            "order_id",
            "kind",
            "due_at",
            "status",
            "lease_expires_at",
            "finished_at",
            "attempts",
            "last_error",
        )
    ) == [
        (follow_ups[0].pk, order.pk, "review_request", DUE, "done", LEASED, DONE, 0, ""),
        (follow_ups[1].pk, order.pk, "loyalty_points", DUE, "pending", LEASED, None, 0, ""),
    ]
    assert list(
        LifecycleStep.objects.order_by("pk").values_list(
            "pk",
            "subscription_id",
            "kind",
            "due_at",
            "status",
            "lease_expires_at",
            "finished_at",
            "attempts",
        )
    ) == [
        (steps[0].pk, subscription.pk, "winback", DUE, "done", LEASED, DONE, 0),
        (steps[1].pk, subscription.pk, "freeze", DUE, "running", LEASED, None, 0),
        (steps[2].pk, subscription.pk, "archive", DUE, "cancelled", None, None, 0),
    ]
    assert list(
        ProductImage.objects.order_by("pk").values_list(
            "pk", "status", "attempts", "next_attempt_at", "last_error", "file", "lease_expires_at"
        )
    ) == [
        (images[0].pk, "failed", 2, DUE, "HTTP 503", "", None),
        (images[1].pk, "downloaded", 1, DUE, "", "products/b.png", None),
    ]
