"""Benchmark: time from a worker's SIGKILL to its step running again.

    .venv/bin/python -m bench.recovery [--quick]

As tests/chaos/test_failures.py measures it, with its pieces (harness/orders.py):
a Redis of its own, a web server, two workers of one process each consuming every
queue, the reconciliation loop every second (`manage.py reconcile --every 1`, the
rig's deadlines), PostgreSQL (database `bench_priority`, shared with bench/priority.py,
which runs before or after it) and the sandbox partners answering after 800 ms, so
the kill lands on a payment step that is running. One order at a time, no backlog:

- pool process: the pool process running the step is SIGKILLed; its worker sees it
  die and the message comes back (acks_late, task_reject_on_worker_lost);
- worker: the whole worker (main process and pool) is SIGKILLed and restarted; the
  message stays unacknowledged in Redis until the visibility timeout, so the
  reconciliation re-dispatches the step once it sees the holder's pid gone.

The delay runs from the kill to the step record's new `started_at`. Medians over
the repeats; prints them and writes bench/results/recovery.json.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the project's apps import
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
from harness.services import bench_database_url  # noqa: E402

DATABASE_URL = os.environ.get("BENCH_RECOVERY_DATABASE_URL", bench_database_url("bench_priority"))
RESULTS = ROOT / "bench" / "results"
REPEATS, QUICK_REPEATS = 5, 1  # of each kind
SANDBOX_LATENCY_MS = [800, 800]


def run(*, quick: bool = False) -> dict[str, Any]:
    """Measure, write recovery.json, and return the figures."""
    results = _measure(quick=quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "recovery.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _measure(*, quick: bool) -> dict[str, Any]:
    """Start the rig, kill and time, stop everything; return the figures."""
    os.environ["DATABASE_URL"] = DATABASE_URL
    os.environ["DATABASE_CONN_MAX_AGE"] = "0"
    os.environ["DJANGO_DEBUG"] = "0"
    from bench.backfill import database_ensure

    database_ensure(DATABASE_URL)
    import django

    django.setup()
    import httpx
    from django.core.management import call_command

    from harness.orders import KINDS, rerun_delay_after_kill
    from harness.rig import Rig
    from sandbox.server import serve_in_thread
    from shop.models import Product

    call_command("migrate", verbosity=0)
    product, _ = Product.objects.update_or_create(
        sku="RECOVERY-1", defaults={"name": "Recovery bench product", "price_cents": 990}
    )
    Product.objects.filter(pk=product.pk).update(stock=10**9, is_active=True)
    repeats = QUICK_REPEATS if quick else REPEATS
    sandbox_server, sandbox_url = serve_in_thread()
    httpx.post(f"{sandbox_url}/control", json={"latency_ms": SANDBOX_LATENCY_MS}).raise_for_status()
    delays: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        rig = Rig(
            tmp_path=Path(tmp), database_url=DATABASE_URL, sandbox_url=sandbox_url, DJANGO_DEBUG="0"
        )
        try:
            rig.start(workers=2, concurrency=1)
            for kind in KINDS * repeats:  # alternating, so both kinds see the same machine
                delay, _ = rerun_delay_after_kill(rig, sku=product.sku, kind=kind)
                delays[kind].append(round(delay, 3))
        finally:
            rig.stop()
            sandbox_server.shutdown()
            sandbox_server.server_close()
    return {
        "config": {
            "repeats": repeats,
            "workers": 2,
            "concurrency": 1,
            "reconcile_every_s": 1,
            "reconcile_running_after_s": int(rig.env["RECONCILE_RUNNING_AFTER_S"]),
            "sandbox_latency_ms": SANDBOX_LATENCY_MS,
        },
        "kinds": {
            kind: {
                "median_s": round(statistics.median(values), 2),
                "min_s": min(values),
                "max_s": max(values),
                "delays_s": values,
            }
            for kind, values in delays.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one kill of each kind")
    options = parser.parse_args()
    results = run(quick=options.quick)
    for kind, row in results["kinds"].items():
        print(
            f"{kind:>12} killed: step running again after median {row['median_s']:.2f} s "
            f"(min {row['min_s']:.2f} s, max {row['max_s']:.2f} s, "
            f"{len(row['delays_s'])} kills)"
        )


if __name__ == "__main__":
    main()
