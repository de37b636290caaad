"""Benchmark: the outage drill of issue 16 at real time (about 17 minutes).

    .venv/bin/python -m bench.outage [--quick]      (make bench-outage)

The payment partner answers 503 for 15 minutes, then recovers; an order is checked out
through the API every PACE_S seconds while it lasts. Production's settings throughout:
retry delays and the payment step's 15-minute budget at full scale, the breaker's 30 s
cool-down, 60 s window and 15 s probe token. The Procfile's worker_high, worker_medium and
worker_low, the reconciliation loop, a web server and a Redis of the rig's own (harness/
rig.py, as bench/recovery.py), PostgreSQL database `bench_outage`, the sandbox partners in
this process. Not part of `make bench`, which it would push past 20 minutes.

Prints orders placed, completed, dead-lettered, charged twice; the time from recovery to
the first payment (the probe that closed the breaker), to the last payment and to the
last order completed (the database's clock); the payment
calls during the outage and the probes among them, with the most in any one cool-down.
Writes bench/results/outage.json. --quick runs the drill at a thirtieth of real time, as
tests/test_outage_drill.py does.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the project's apps import
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
from harness.services import bench_database_url  # noqa: E402

DATABASE_URL = os.environ.get("BENCH_OUTAGE_DATABASE_URL", bench_database_url("bench_outage"))
RESULTS = ROOT / "bench" / "results"
PACE_S = 5  # one order every 5 s: 180 in the outage
QUICK_SCALE = 1 / 30
TARGET = "all orders complete, none dead-lettered, none charged twice, <= 1 probe per cool-down"


def run(*, quick: bool = False) -> dict[str, Any]:
    """Run the drill, write outage.json, and return the figures."""
    results = _measure(scale=QUICK_SCALE if quick else 1.0)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "outage.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _measure(*, scale: float) -> dict[str, Any]:
    from bench.backfill import django_setup

    django_setup(DATABASE_URL)
    import httpx

    from harness.outage import OUTAGE_S, drill_env, drill_run
    from harness.rig import Rig
    from sandbox.server import serve_in_thread
    from shop.models import Product

    product, _ = Product.objects.update_or_create(
        sku="OUTAGE-1", defaults={"name": "Outage drill product", "price_cents": 990}
    )
    Product.objects.filter(pk=product.pk).update(stock=10**9, is_active=True)
    sandbox_server, sandbox_url = serve_in_thread()
    env = drill_env(scale=scale)
    with (
        tempfile.TemporaryDirectory(prefix="bench-outage-") as tmp,
        httpx.Client(base_url=sandbox_url) as sandbox,
    ):
        rig = Rig(
            tmp_path=Path(tmp),
            database_url=DATABASE_URL,
            sandbox_url=sandbox_url,
            DJANGO_DEBUG="0",
            **env,
        )
        try:
            rig.start(copies=0)
            rig.procfile_start("worker_high", "worker_medium", "worker_low")
            _, figures = drill_run(
                rig,
                sandbox,
                sku=product.sku,
                outage_s=OUTAGE_S * scale,
                pace_s=PACE_S * scale,
                settle_s=1800,
            )
        finally:
            rig.stop()
            sandbox_server.shutdown()
            sandbox_server.server_close()
    f = figures
    return {
        "config": {"scale": scale, "pace_s": PACE_S * scale, **env},
        "figures": f.as_json(),
        "target": TARGET,
        "met": f.completed == f.placed
        and f.dead_lettered == f.charged_twice == f.uncharged == 0
        and f.most_probes_in_a_cooldown <= 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="at a thirtieth of real time")
    options = parser.parse_args()
    results = run(quick=options.quick)
    f = results["figures"]
    print(
        f"payment outage of {f['outage_s']:g} s: {f['placed']} orders placed, "
        f"{f['completed']} completed, {f['dead_lettered']} dead-lettered, "
        f"{f['charged_twice']} charged twice, {f['uncharged']} not charged\n"
        f"recovery to the first payment (the probe) {f['recovery_to_first_paid_s']:.1f} s, "
        f"to the last payment {f['recovery_to_last_paid_s']:.1f} s, "
        f"to the last order completed {f['recovery_to_last_completed_s']:.1f} s\n"
        f"{f['payment_calls_in_outage']} payment calls in the outage, {f['probes']} of them "
        f"probes, at most {f['most_probes_in_a_cooldown']} in a cool-down of "
        f"{f['cooldown_s']:g} s\n"
        f"target: {results['target']}: {'met' if results['met'] else 'missed'}"
    )


if __name__ == "__main__":
    main()
