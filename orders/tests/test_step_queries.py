"""The engine's database work per step, counted: the claim, the outcome with the
successors it makes ready, their publish, and the order's refresh. A change that adds
a query fails here."""

import pytest

from config.celery import app
from fulfillment.tasks import erp_sync
from orders.tasks import analytics_track, payment_capture
from tests.factories import order_place, product_create

# transaction=True: each step commits for real, as in a worker, so the count has the
# BEGIN and COMMIT it sends and the publish that runs after its commit.
pytestmark = pytest.mark.django_db(transaction=True)

# One statement: the step, queued and not locked, leased, returned with its order.
CLAIM = ["UPDATE"]
# The order's status from its forward steps, and whether the order had ended (a step
# finishing after a cancel gets its undo: engine/compensation.py), in one statement.
REFRESH = ["WITH"]


@pytest.fixture
def empty_queues():
    """The steps publish their successors for real; nothing may reach a later test."""
    app.control.purge()
    yield
    app.control.purge()


def verbs(queries) -> list[str]:
    return [query["sql"].split(" ", 1)[0] for query in queries.captured_queries]


def test_a_step_with_successors_takes_its_claim_one_outcome_statement_a_publish_mark_the_refresh(
    sandbox, empty_queues, django_assert_num_queries
):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))

    with django_assert_num_queries(6) as queries:
        erp_sync.apply(args=(order.pk,))

    # The ERP sync's own work: its lines read, the reference written.
    work = ["SELECT", "UPDATE"]
    # Its success and its successor made ready in one statement; then the label's message
    # published and the label marked published.
    outcome = ["WITH", "UPDATE"]
    assert verbs(queries) == CLAIM + work + outcome + REFRESH
    assert order.steps.get(name="label_purchase").published_at is not None


def test_a_step_without_successors_takes_its_claim_one_outcome_statement_and_the_refresh(
    sandbox, empty_queues, django_assert_num_queries
):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))

    with django_assert_num_queries(4) as queries:
        analytics_track.apply(args=(order.pk,))

    work = ["SELECT"]  # the lines it reports
    assert verbs(queries) == CLAIM + work + ["WITH"] + REFRESH  # the outcome: one statement


def test_a_second_delivery_of_a_finished_step_takes_its_lookup_the_refresh_and_a_successor_check(
    sandbox, empty_queues, django_assert_num_queries
):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))

    with django_assert_num_queries(6) as queries:
        payment_capture.apply(args=(order.pk,))

    # The claim's statement finds nothing to take; the full claim finds it done (BEGIN,
    # SELECT, COMMIT), tells the order again, and finds its successors published.
    assert verbs(queries) == ["UPDATE", "BEGIN", "SELECT", "COMMIT"] + REFRESH + ["SELECT"]
