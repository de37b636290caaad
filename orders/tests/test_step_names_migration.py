"""Migration 0009 renames the step records of every order to the steps' name stems, and
back when unapplied."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from orders.models import Step
from tests.factories import order_place, product_create

STEMS = ("orders", "0009_step_name_stems")
OLD_NAMES = {
    "payment": "payment_capture",
    "confirmation_email": "confirmation_email_send",
    "erp_sync": "erp_sync",
    "invoice": "invoice_render",
    "label": "label_purchase",
    "analytics": "analytics_track",
    "refund": "payment_refund",
    "erp_cancel": "erp_cancel",
    "label_void": "label_void",
    "cancellation_email": "cancellation_email_send",
    "payment_failed_email": "payment_failed_email_send",
}


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()  # what was just applied, for the next state asked for
    return executor.loader.project_state(targets).apps


def _before_stems() -> tuple[str, str]:
    graph = MigrationExecutor(connection).loader.graph
    (parent,) = (p for p in graph.node_map[STEMS].parents if p.key[0] == "orders")
    return parent.key


@pytest.mark.django_db(transaction=True)
def test_steps_recorded_under_their_old_names_are_found_under_their_stems_after():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    order = order_place((product_create(), 1)).order
    other = order_place((product_create(), 1)).order
    # Every other app as it is now, orders as it was before the stems.
    old = migrate([node for node in latest if node[0] != "orders"] + [_before_stems()])
    try:
        step = old.get_model("orders", "Step")
        step.objects.all().delete()
        for position, name in enumerate(OLD_NAMES):
            step.objects.create(
                order_id=order.pk, name=name, position=position, queue="high", status="succeeded"
            )
        step.objects.create(
            order_id=other.pk, name="payment", position=0, queue="high", status="failed"
        )
    finally:
        migrate(latest)

    assert list(Step.objects.filter(order=order).values_list("name", flat=True)) == list(
        OLD_NAMES.values()
    )
    assert list(Step.objects.filter(order=other).values_list("name", "status")) == [
        ("payment_capture", "failed")
    ]


@pytest.mark.django_db(transaction=True)
def test_unapplying_the_stems_gives_the_steps_their_old_names_back():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    order = order_place((product_create(), 1)).order
    try:
        old = migrate([node for node in latest if node[0] != "orders"] + [_before_stems()])
        names = old.get_model("orders", "Step").objects.filter(order_id=order.pk)
        assert list(names.values_list("name", flat=True)) == [
            "payment",
            "confirmation_email",
            "erp_sync",
            "invoice",
            "label",
            "analytics",
        ]
    finally:
        migrate(latest)
