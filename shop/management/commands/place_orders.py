"""Load test: simulated customers check out through the HTTP API, then each order's
pipeline is followed to the end and the timings are reported.

    manage.py place_orders --count 200 --concurrency 20 --decline-rate 0.1
"""

import math
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

Product = dict[str, Any]  # a product as GET /api/v1/products lists it
Order = dict[str, Any]  # an order as GET /api/v1/orders/<token> returns it

POLL_INTERVAL_S = 0.5
# Generous: under load a checkout queues behind others; a slow answer is a data point.
REQUEST_TIMEOUT_S = 30.0
ACTIVE_STEP_STATUSES = {"queued", "running", "retrying"}
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


@dataclass(frozen=True)
class Checkout:
    """The outcome of one checkout request."""

    latency_ms: float
    token: str | None = None  # set when the order was placed
    error: str | None = None  # the HTTP status code, or the transport error's name


def percentile(values: Sequence[float], p: float) -> float:
    """Return the nearest-rank p-th percentile (0 < p <= 100); nan when there are no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]


def products_fetch(client: httpx.Client, base_url: str) -> list[Product]:
    """Return the products in stock; CommandError naming the URL when the shop cannot tell."""
    url = f"{base_url}/api/v1/products"
    try:
        response = client.get(url)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise CommandError(f"Could not fetch products from {url}: {exc}") from exc
    in_stock = [product for product in response.json()["products"] if product["stock"] > 0]
    if not in_stock:
        raise CommandError(f"No product in stock at {url}.")
    return in_stock


def checkout_body(products: list[Product], decline_rate: float) -> dict[str, Any]:
    """Return a random customer's checkout: 1-3 products in stock, 1-2 units of each."""
    picked = random.sample(products, k=random.randint(1, min(3, len(products))))
    return {
        "email": f"customer-{uuid.uuid4().hex[:12]}@example.com",
        "items": [
            {"sku": product["sku"], "quantity": random.randint(1, min(2, product["stock"]))}
            for product in picked
        ],
        "shipping_address": ADDRESS,
        "payment_token": "tok_decline" if random.random() < decline_rate else "tok_visa",
    }


def checkout_send(client: httpx.Client, base_url: str, body: dict[str, Any]) -> Checkout:
    """POST one checkout with a fresh Idempotency-Key and time it."""
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    started = time.perf_counter()
    try:
        response = client.post(f"{base_url}/api/v1/checkout", json=body, headers=headers)
    except httpx.TransportError as exc:
        return Checkout(latency_ms=(time.perf_counter() - started) * 1000, error=type(exc).__name__)
    latency_ms = (time.perf_counter() - started) * 1000
    if response.status_code == 201:
        return Checkout(latency_ms=latency_ms, token=response.json()["token"])
    return Checkout(latency_ms=latency_ms, error=str(response.status_code))


def order_fetch(client: httpx.Client, base_url: str, token: str) -> Order | None:
    """GET the order's state; None on any HTTP error, so the next round asks again."""
    try:
        response = client.get(f"{base_url}/api/v1/orders/{token}")
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    return response.json()


def order_finished(order: Order) -> bool:
    """Whether the pipeline is at rest: completed, payment failed, or stuck with nothing running.

    Steps still pending in needs_attention wait on a failed step, so they never run.
    """
    if order["status"] in ("completed", "payment_failed"):
        return True
    return order["status"] == "needs_attention" and not any(
        step["status"] in ACTIVE_STEP_STATUSES for step in order["steps"]
    )


def orders_follow(
    client: httpx.Client,
    base_url: str,
    pool: ThreadPoolExecutor,
    tokens: list[str],
    timeout_s: float,
) -> list[Order | None]:
    """Poll the unfinished orders every POLL_INTERVAL_S until all finish or timeout_s passes.

    Return the last state seen of each order, None for one that could never be read.
    """
    last: dict[str, Order | None] = dict.fromkeys(tokens)
    unfinished = list(tokens)
    deadline = time.monotonic() + timeout_s
    with tqdm(total=len(tokens), desc="pipelines", unit="order", file=sys.stderr) as bar:
        while True:
            next_round = time.monotonic() + POLL_INTERVAL_S
            fetched = pool.map(lambda token: order_fetch(client, base_url, token), unfinished)
            still = []
            for token, order in zip(unfinished, fetched, strict=True):
                last[token] = order or last[token]
                if not (last[token] and order_finished(last[token])):
                    still.append(token)
            bar.update(len(unfinished) - len(still))
            unfinished = still
            if not unfinished or next_round >= deadline:
                break
            time.sleep(max(0.0, next_round - time.monotonic()))
    return list(last.values())


def pipeline_seconds(order: Order) -> float | None:
    """Return the server's time from checkout to the last finished step; None if none finished."""
    ends = [datetime.fromisoformat(s["finished_at"]) for s in order["steps"] if s["finished_at"]]
    if not ends:
        return None
    return (max(ends) - datetime.fromisoformat(order["created_at"])).total_seconds()


def summary_lines(
    *, checkouts: list[Checkout], orders: list[Order | None], wall_s: float
) -> list[str]:
    """Return the report; its last line is the machine-readable summary."""
    finished = [order for order in orders if order is not None and order_finished(order)]
    statuses = Counter(order["status"] for order in finished)
    completed = statuses["completed"]
    failed = statuses["payment_failed"] + statuses["needs_attention"]
    errors = Counter(checkout.error for checkout in checkouts if checkout.error)
    error_counts = ", ".join(f"{code}: {n}" for code, n in sorted(errors.items()))
    latencies = [checkout.latency_ms for checkout in checkouts]
    pipeline = [s for order in finished if (s := pipeline_seconds(order)) is not None]
    checkout_p50, checkout_p99 = percentile(latencies, 50), percentile(latencies, 99)
    pipeline_p50 = percentile(pipeline, 50)
    return [
        f"orders placed:    {len(orders)} of {len(checkouts)}",
        f"completed:        {completed}",
        f"failed:           {failed} (payment_failed {statuses['payment_failed']}, "
        f"needs_attention {statuses['needs_attention']})",
        f"unfinished:       {len(orders) - len(finished)}",
        f"checkout errors:  {errors.total()}" + (f" ({error_counts})" if errors else ""),
        f"checkout latency: p50 {checkout_p50:.1f} ms, p95 {percentile(latencies, 95):.1f} ms, "
        f"p99 {checkout_p99:.1f} ms",
        f"pipeline time:    p50 {pipeline_p50:.2f} s, p99 {percentile(pipeline, 99):.2f} s",
        f"wall time:        {wall_s:.2f} s, {len(orders) / wall_s:.2f} orders/s",
        f"orders={len(orders)} completed={completed} failed={failed} "
        f"checkout_p50_ms={checkout_p50:.1f} checkout_p99_ms={checkout_p99:.1f} "
        f"pipeline_p50_s={pipeline_p50:.2f}",
    ]


class Command(BaseCommand):
    help = "Check out simulated customers through the HTTP API and follow their orders to the end."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, required=True, help="checkouts to attempt")
        parser.add_argument("--concurrency", type=int, required=True, help="customers at once")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="the shop")
        parser.add_argument(
            "--timeout", type=float, default=300, help="seconds to follow the pipelines"
        )
        parser.add_argument(
            "--decline-rate", type=float, default=0.0, help="share of orders paid with tok_decline"
        )

    def handle(
        self,
        *args: Any,
        count: int,
        concurrency: int,
        base_url: str,
        timeout: float,
        decline_rate: float,
        **options: Any,
    ) -> None:
        if count < 1 or concurrency < 1:
            raise CommandError("--count and --concurrency must be at least 1.")
        if not 0 <= decline_rate <= 1:
            raise CommandError("--decline-rate must be between 0 and 1.")
        base_url = base_url.rstrip("/")
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        with (
            httpx.Client(limits=limits, timeout=REQUEST_TIMEOUT_S) as client,
            ThreadPoolExecutor(max_workers=concurrency) as pool,
        ):
            products = products_fetch(client, base_url)

            def customer(_: int) -> Checkout:
                return checkout_send(client, base_url, checkout_body(products, decline_rate))

            started = time.perf_counter()
            checkouts = list(pool.map(customer, range(count)))
            tokens = [checkout.token for checkout in checkouts if checkout.token]
            if not tokens:
                errors = dict(Counter(checkout.error for checkout in checkouts))
                raise CommandError(f"No order could be placed at {base_url}: errors {errors}.")
            orders = orders_follow(client, base_url, pool, tokens, timeout)
            wall_s = time.perf_counter() - started
        for line in summary_lines(checkouts=checkouts, orders=orders, wall_s=wall_s):
            self.stdout.write(line)
