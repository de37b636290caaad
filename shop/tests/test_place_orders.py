"""The place_orders load test: its report, and a run against a live server."""

import re
import socket
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum

from orders.models import Order, OrderLine
from shop.management.commands.place_orders import Checkout, percentile, summary_lines
from shop.models import Product

STOCK = 50


def order(status: str, steps: list[tuple[str, str | None]]) -> dict:
    """An order placed at 12:00:00 UTC as the status API returns it, with the fields read."""
    return {
        "status": status,
        "created_at": "2025-01-01T12:00:00+00:00",
        "steps": [
            {"status": step, "finished_at": at and f"2025-01-01T{at}+00:00"} for step, at in steps
        ],
    }


def test_percentile_is_nearest_rank_and_nan_without_values():
    values = [float(n) for n in range(100, 0, -1)]

    assert [percentile(values, p) for p in (1, 50, 95, 99, 100)] == [1.0, 50.0, 95.0, 99.0, 100.0]
    assert percentile([7.0], 50) == 7.0
    assert str(percentile([], 50)) == "nan"


def test_summary_counts_finished_orders_and_ends_with_the_machine_readable_line():
    checkouts = [Checkout(latency_ms=float(ms), token=f"t{ms}") for ms in range(10, 110, 10)]
    checkouts += [
        Checkout(latency_ms=5.0, error="409"),
        Checkout(latency_ms=1.0, error="ConnectError"),
    ]
    orders = [
        order("completed", [("succeeded", "12:00:01.500"), ("succeeded", "12:00:02.250")]),
        order("completed", [("succeeded", "12:00:04")]),
        order("payment_failed", [("failed", "12:00:01"), ("cancelled", None)]),
        # Its pending step waits on the failed one: finished.
        order("needs_attention", [("failed", "12:00:03"), ("pending", None)]),
        # A step will be retried: not finished yet.
        order("needs_attention", [("retrying", None)]),
        order("placed", [("queued", None)]),
        None,  # never read
    ]

    lines = summary_lines(checkouts=checkouts, orders=orders, wall_s=2.0)

    assert lines == [
        "orders placed:    7 of 12",
        "completed:        2",
        "failed:           2 (payment_failed 1, needs_attention 1)",
        "unfinished:       3",
        "checkout errors:  2 (409: 1, ConnectError: 1)",
        "checkout latency: p50 40.0 ms, p95 100.0 ms, p99 100.0 ms",
        "pipeline time:    p50 2.25 s, p99 4.00 s",
        "wall time:        2.00 s, 3.50 orders/s",
        "orders=7 completed=2 failed=2 "
        "checkout_p50_ms=40.0 checkout_p99_ms=100.0 pipeline_p50_s=2.25",
    ]


def test_summary_prints_nan_when_there_is_no_data():
    lines = summary_lines(checkouts=[], orders=[], wall_s=1.0)

    assert lines[-1] == (
        "orders=0 completed=0 failed=0 checkout_p50_ms=nan checkout_p99_ms=nan pipeline_p50_s=nan"
    )


def test_customers_place_orders_through_the_api_and_unfinished_pipelines_time_out(
    live_server, transactional_db, monkeypatch
):
    # No Celery worker runs here. Publishing would leave messages in the test broker that a
    # later system test's worker would run against whatever orders then have these ids.
    monkeypatch.setattr("orders.receivers.pipeline_dispatch", lambda **kwargs: None)
    for sku in ("MUG-001", "TEE-002", "BAG-003"):
        Product.objects.create(sku=sku, name=sku, price_cents=1000, stock=STOCK)
    stdout = StringIO()

    # The orders stay placed, so following them ends at --timeout.
    call_command(
        "place_orders", count=5, concurrency=2, base_url=live_server.url, timeout=1, stdout=stdout
    )

    lines = stdout.getvalue().splitlines()
    assert lines[:5] == [
        "orders placed:    5 of 5",
        "completed:        0",
        "failed:           0 (payment_failed 0, needs_attention 0)",
        "unfinished:       5",
        "checkout errors:  0",
    ]
    assert re.fullmatch(
        r"orders=5 completed=0 failed=0 checkout_p50_ms=\d+\.\d checkout_p99_ms=\d+\.\d "
        r"pipeline_p50_s=nan",
        lines[-1],
    )
    assert Order.objects.count() == 5
    sold = dict(OrderLine.objects.values_list("sku").annotate(Sum("quantity")))
    assert {p.sku: p.stock for p in Product.objects.all()} == {
        sku: STOCK - sold.get(sku, 0) for sku in ("MUG-001", "TEE-002", "BAG-003")
    }
    assert sum(sold.values()) >= 5


def test_an_unreachable_shop_is_a_command_error_naming_the_url():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{free.getsockname()[1]}"

    with pytest.raises(CommandError) as excinfo:
        call_command("place_orders", count=1, concurrency=1, base_url=url, stdout=StringIO())

    # The reason after the colon is the operating system's wording of "connection refused".
    assert str(excinfo.value).startswith(f"Could not fetch products from {url}/api/v1/products: ")
