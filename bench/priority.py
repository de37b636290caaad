"""Benchmark: high-queue pickup latency behind 100,000 waiting bulk jobs, against the
same with an empty bulk queue, in one run.

    .venv/bin/python -m bench.priority [--quick]

The Procfile's workers (one per queue: high, medium, low, bulk) against a Redis of
the benchmark's own (the backlog is about 100 MB), PostgreSQL (database
`bench_priority`), a web server and the sandbox partners answering after 20-60 ms,
as the chaos tests' rig (harness/rig.py) runs them. Orders go in through the HTTP
API at a steady 3 a second, in two rounds of two phases: with the bulk queue empty,
then with 100,000 bulk jobs waiting and the bulk worker busy on them (each 20 ms of
CPU, as an import batch spends); 150 orders per phase in all (40 in one round with
--quick).
Pickup is the time from a payment step being queued (its `queued_at`, written when
the message has been published) to a worker starting it (`started_at`).

The backlog is published in seconds: one real apply_async, then copies of exactly
the message kombu wrote, a thousand to an LPUSH (harness/backlog.py says why).
Prints the figures and writes bench/results/priority.json and priority_pickup.png.
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the project's apps import
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
from harness.services import bench_database_url  # noqa: E402

DATABASE_URL = os.environ.get("BENCH_PRIORITY_DATABASE_URL", bench_database_url("bench_priority"))
RESULTS = ROOT / "bench" / "results"

BACKLOG = 100_000
BULK_JOB_MS = 20
ORDERS, QUICK_ORDERS = 150, 40  # per phase, over all rounds
ROUNDS = 2
# Well under what the high worker (2 processes) gets through on this machine, so the
# figure is the wait a bulk backlog adds, not a queue of checkouts of our own making.
ORDERS_PER_S = 3.0
SANDBOX_LATENCY_MS = [20, 60]
TARGET_P99_MS = 1000.0
PHASES = ("empty", "backlog")
LABELS = {"empty": "bulk queue empty", "backlog": f"{BACKLOG:,} bulk jobs waiting"}


def orders_place(rig, sku: str, *, count: int, rate: float) -> list[str]:
    """Check out `count` orders through the API, one every 1/rate seconds."""
    started = time.monotonic()

    def place(n: int) -> str:
        time.sleep(max(0.0, started + n / rate - time.monotonic()))
        return rig.checkout([(sku, 1)])["number"]

    # Enough threads that a slow answer does not hold back the next order's slot.
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(place, range(count)))


def pickups_ms(numbers: list[str]) -> tuple[list[float], int]:
    """Queued-to-started milliseconds of these orders' payment steps, and how many
    could not be measured (started before the publisher had marked them queued)."""
    from orders.models import Step

    rows = Step.objects.filter(order__number__in=numbers, name="payment_capture").values_list(
        "queued_at", "started_at"
    )
    measured = [
        (started - queued).total_seconds() * 1000 for queued, started in rows if queued and started
    ]
    return measured, len(numbers) - len(measured)


def phase_run(rig, broker, sku: str, *, phase: str, count: int) -> tuple[list[str], dict]:
    """Place `count` orders with the bulk queue empty or holding the backlog; wait until
    they are done; return their numbers and what happened on the bulk queue meanwhile."""
    from config.queues import BULK
    from harness.backlog import bulk_backlog_publish, bulk_runs_by_worker
    from harness.orders import orders_wait_settled
    from orders.models import Order

    row: dict[str, Any] = {}
    broker.delete(BULK)
    if phase == "backlog":
        runs_before = sum(bulk_runs_by_worker(redis_url=rig.broker_url).values())
        started = time.perf_counter()
        bulk_backlog_publish(broker_url=rig.broker_url, count=BACKLOG, ms=BULK_JOB_MS)
        row["publish_s"] = round(time.perf_counter() - started, 2)
        while sum(bulk_runs_by_worker(redis_url=rig.broker_url).values()) == runs_before:
            time.sleep(0.05)  # the bulk worker is on it before the first order
    row["bulk_waiting_before"] = broker.llen(BULK)
    runs_before = sum(bulk_runs_by_worker(redis_url=rig.broker_url).values())
    numbers = orders_place(rig, sku, count=count, rate=ORDERS_PER_S)
    orders_wait_settled(numbers, timeout=180)
    row["bulk_waiting_after"] = broker.llen(BULK)
    row["bulk_jobs_run"] = sum(bulk_runs_by_worker(redis_url=rig.broker_url).values()) - runs_before
    row["orders_completed"] = Order.objects.filter(
        number__in=numbers, status=Order.Status.COMPLETED
    ).count()
    return numbers, row


def summary(values: list[float]) -> dict[str, float]:
    from shop.management.commands.place_orders import percentile

    return {
        "p50_ms": round(percentile(values, 50), 1),
        "p95_ms": round(percentile(values, 95), 1),
        "p99_ms": round(percentile(values, 99), 1),
        "max_ms": round(max(values), 1),
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    """Measure, write priority.json and priority_pickup.png, and return the figures."""
    results = _measure(quick=quick)
    pickups = results.pop("_pickups")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "priority.json").write_text(json.dumps(results, indent=2) + "\n")
    plot_write(pickups, results, RESULTS / "priority_pickup.png")
    return results


def _measure(*, quick: bool) -> dict[str, Any]:
    """Start the shop, measure both phases, stop everything; return the figures."""
    from bench.backfill import django_setup

    django_setup(DATABASE_URL)
    import httpx
    import redis
    from django.db import connection

    from config.queues import BULK
    from harness.processes import children_start, children_stop, procfile_workers
    from harness.procfile import procfile_worker_specs
    from harness.rig import Rig
    from sandbox.server import serve_in_thread
    from shop.models import Product

    # Empty, then backlog, repeated: both phases see the same (shared, noisy) machine.
    rounds = 1 if quick else ROUNDS
    count = (QUICK_ORDERS if quick else ORDERS) // rounds
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE orders_order RESTART IDENTITY CASCADE")
    product, _ = Product.objects.update_or_create(
        sku="PRIO-1", defaults={"name": "Priority bench product", "price_cents": 990}
    )
    Product.objects.filter(pk=product.pk).update(stock=10**9, is_active=True)

    sandbox_server, sandbox_url = serve_in_thread()
    httpx.post(f"{sandbox_url}/control", json={"latency_ms": SANDBOX_LATENCY_MS}).raise_for_status()
    results: dict[str, Any] = {
        "config": {
            "orders_per_phase": count * rounds,
            "rounds": rounds,
            "orders_per_s": ORDERS_PER_S,
            "sandbox_latency_ms": SANDBOX_LATENCY_MS,
            "bulk_backlog": BACKLOG,
            "bulk_job_cpu_ms": BULK_JOB_MS,
            "workers": {
                name: dataclasses.asdict(spec) for name, spec in procfile_worker_specs().items()
            },
        },
        "phases": {},
    }
    pickups: dict[str, list[float]] = {phase: [] for phase in PHASES}
    rounds_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-priority-") as tmp:
        rig = Rig(
            tmp_path=Path(tmp), database_url=DATABASE_URL, sandbox_url=sandbox_url, DJANGO_DEBUG="0"
        )
        workers = procfile_workers(env=rig.env, log_dir=Path(tmp), include=("harness.backlog",))
        try:
            rig.start(copies=0, reconcile=False)
            broker = redis.Redis.from_url(rig.broker_url)
            # The backlog is ~100 MB: no AOF rewrite forking in the middle of the measurement.
            broker.config_set("appendonly", "no")
            children_start(workers.values())
            for round_ in range(rounds):
                for phase in PHASES:
                    numbers, row = phase_run(rig, broker, product.sku, phase=phase, count=count)
                    measured, row["unmeasured"] = pickups_ms(numbers)
                    pickups[phase] += measured
                    row.update(summary(measured))
                    rounds_rows.append({"round": round_ + 1, "phase": phase, **row})
        finally:
            if rig.redis:
                # Emptied first: the bulk worker's warm shutdown then waits for one job only.
                redis.Redis.from_url(rig.broker_url).delete(BULK)
            children_stop(workers.values())
            rig.stop()
            sandbox_server.shutdown()
            sandbox_server.server_close()
    for phase in PHASES:
        mine = [row for row in rounds_rows if row["phase"] == phase]
        results["phases"][phase] = {
            **summary(pickups[phase]),
            "payment_steps": len(pickups[phase]),
            "unmeasured": sum(row["unmeasured"] for row in mine),
            "orders_completed": sum(row["orders_completed"] for row in mine),
        }
    results["rounds"] = rounds_rows
    empty, backlog = results["phases"]["empty"], results["phases"]["backlog"]
    results["ratio_backlog_over_empty"] = {
        key: round(backlog[key] / empty[key], 2) for key in ("p50_ms", "p95_ms", "p99_ms")
    }
    results["target_p99_ms"] = TARGET_P99_MS
    results["target_met"] = backlog["p99_ms"] <= TARGET_P99_MS
    results["_pickups"] = pickups
    return results


def plot_write(pickups: dict[str, list[float]], results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = [v for phase in PHASES for v in pickups[phase]]
    bins = np.geomspace(max(min(values), 0.5), max(max(values), TARGET_P99_MS) * 1.1, 40)
    fig, ax = plt.subplots(figsize=(9, 5))
    for phase, color in zip(PHASES, ("tab:blue", "tab:red"), strict=True):
        p99 = results["phases"][phase]["p99_ms"]
        ax.hist(
            pickups[phase],
            bins=bins,
            alpha=0.55,
            color=color,
            label=f"{LABELS[phase]}: p50 {results['phases'][phase]['p50_ms']} ms, p99 {p99} ms",
        )
        ax.axvline(p99, color=color, linestyle=":", linewidth=1)
    ax.axvline(TARGET_P99_MS, color="gray", linestyle="--", linewidth=1, label="p99 target 1 s")
    ax.set_xscale("log")
    ax.set_xlabel("payment step pickup: queued → started (ms, log scale)")
    ax.set_ylabel("payment steps")
    config = results["config"]
    ax.set_title(
        f"High-queue pickup, {config['orders_per_phase']} orders per phase at "
        f"{config['orders_per_s']:g}/s, partners {config['sandbox_latency_ms']} ms"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ORDERS} orders per phase")
    options = parser.parse_args()
    results = run(quick=options.quick)
    for row in results["rounds"]:
        published = f"{BACKLOG:,} published in {row['publish_s']} s, " if "publish_s" in row else ""
        print(
            f"round {row['round']} {row['phase']:>7}: p50 {row['p50_ms']:7.1f} ms  "
            f"p99 {row['p99_ms']:7.1f} ms; bulk queue: {published}"
            f"{row['bulk_waiting_before']:,} waiting before the orders, "
            f"{row['bulk_waiting_after']:,} after, {row['bulk_jobs_run']:,} run meanwhile"
        )
    for phase in PHASES:
        row = results["phases"][phase]
        print(
            f"{LABELS[phase]:>26}: payment pickup p50 {row['p50_ms']:7.1f} ms  "
            f"p95 {row['p95_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  max {row['max_ms']:7.1f} ms"
            f"  ({row['payment_steps']} steps, {row['orders_completed']} orders completed, "
            f"{row['unmeasured']} unmeasured)"
        )
    ratio = results["ratio_backlog_over_empty"]
    print(
        f"backlog / empty: p50 {ratio['p50_ms']}x, p95 {ratio['p95_ms']}x, p99 {ratio['p99_ms']}x; "
        f"target p99 <= {TARGET_P99_MS:.0f} ms {'met' if results['target_met'] else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
