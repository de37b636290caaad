"""Benchmark: time from a worker's SIGKILL to its step running again, default settings.

    .venv/bin/python -m bench.recovery [--quick]

The Procfile's own worker lines (worker_high, worker_medium, worker_low: pools of
threads), a Redis of its own, a web server, PostgreSQL (database `bench_priority`,
shared with bench/priority.py, which runs before or after it) and the sandbox partners
answering after 800 ms, so the kill lands on a payment step that is running. No
reconciliation loop: only the workers' heartbeats (STEP_LEASE_S, STEP_HEARTBEAT_S at
their defaults) bring a step back. One order at a time, no backlog. Each kill starts a
second worker_high beside the rig's, waits until it runs an order's payment, and
SIGKILLs it whole, or kills a pool process:

- worker on another host: it runs in a UTS namespace with another host name
  (`unshare --uts`), so no process can probe it: its leases lapse (STEP_LEASE_S after
  its last heartbeat) and a survivor's heartbeat sweep re-publishes the step;
- worker on this host: its pid is gone from this machine, which the next heartbeat
  sweep of any worker here sees at once (the faster path). A pool of threads dies with
  its worker: this is also "a pool thread killed";
- pool process on this host: an order's payment, made suspect, runs alone on
  worker_quarantine's prefork pool process, which is SIGKILLed while it runs; its
  worker's main process sweeps as soon as the child is a zombie (engine/heartbeat.py).

The steps of a killed pool of threads run again in quarantine (engine/blame.py).

The delay runs from the kill to the step record's new `started_at`, both read on the
database's clock. Medians over the repeats; prints them and writes
bench/results/recovery.json.
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
# Kind of kill: where the killed worker runs (a host name of its own, or this host).
# A pool of threads dies with its worker, so a thread is killed as its whole worker_high;
# a prefork pool process is worker_quarantine's, running a suspect step alone.
KINDS = {
    "worker on another host": "other-host",
    "worker on this host": None,
    "pool process on this host": "pool process",
}
TARGETS_S = {
    "worker on another host": 30,
    "worker on this host": 5,
    "pool process on this host": 5,
}


def run(*, quick: bool = False) -> dict[str, Any]:
    """Measure, write recovery.json, and return the figures."""
    results = _measure(quick=quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "recovery.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _measure(*, quick: bool) -> dict[str, Any]:
    """Start the rig, kill and time, stop everything; return the figures."""
    from bench.backfill import django_setup

    django_setup(DATABASE_URL)
    import httpx
    from django.conf import settings

    from harness.orders import (
        rerun_delay_after_pool_process_kill,
        rerun_delay_after_worker_kill,
    )
    from harness.rig import Rig
    from sandbox.server import serve_in_thread
    from shop.models import Product

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
            rig.start(copies=0, reconcile=False)
            rig.procfile_start("worker_high", "worker_medium", "worker_low", "worker_quarantine")
            for kind in list(KINDS) * repeats:  # alternating: all see the same machine
                if KINDS[kind] == "pool process":
                    delay, _ = rerun_delay_after_pool_process_kill(rig, sku=product.sku)
                else:
                    delay, _ = rerun_delay_after_worker_kill(
                        rig, sku=product.sku, machine=KINDS[kind]
                    )
                delays[kind].append(round(delay, 3))
        finally:
            rig.stop()
            sandbox_server.shutdown()
            sandbox_server.server_close()
    return {
        "config": {
            "repeats": repeats,
            "workers": "Procfile worker_high (threads, 8) x2, worker_medium, worker_low, "
            "worker_quarantine (prefork, 1)",
            "step_lease_s": settings.STEP_LEASE_S,
            "step_heartbeat_s": settings.STEP_HEARTBEAT_S,
            "reconcile": "off",
            "sandbox_latency_ms": SANDBOX_LATENCY_MS,
        },
        "kinds": {
            kind: {
                "median_s": round(statistics.median(values), 2),
                "min_s": min(values),
                "max_s": max(values),
                "target_s": TARGETS_S[kind],
                "met": max(values) <= TARGETS_S[kind],
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
            f"{kind:>22} killed: step running again after median {row['median_s']:.2f} s "
            f"(min {row['min_s']:.2f} s, max {row['max_s']:.2f} s, "
            f"{len(row['delays_s'])} kills; target {row['target_s']} s: "
            f"{'met' if row['met'] else 'missed'})"
        )


if __name__ == "__main__":
    main()
