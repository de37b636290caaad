"""Benchmark: the nightly sales backfill over 100k and 1M orders on PostgreSQL.

    .venv/bin/python bench/backfill.py [--orders 100000 1000000] [--database-url URL]

Each size runs in a fresh process on a freshly filled database (orders and lines
generated in SQL over 365 days), so its peak memory is its own. Prints time, peak
RSS, and time per 100k orders, and writes bench/results/backfill.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the project's apps import
from harness.services import bench_database_url  # noqa: E402

DEFAULT_URL = bench_database_url("shopflow_bench")

FILL = """
TRUNCATE orders_orderline, orders_step, orders_idempotencykey, orders_order,
         orders_salesday, orders_productsalesday, orders_watermark RESTART IDENTITY CASCADE;
DELETE FROM shop_product WHERE sku LIKE 'BENCH-%%';
INSERT INTO shop_product (sku, name, description, price_cents, stock, is_active, is_subscription)
SELECT 'BENCH-' || n, 'Bench product ' || n, '', 500 + n * 100, 1000000, true, false
FROM generate_series(1, 20) n;
INSERT INTO orders_order (number, token, email, shipping_address, payment_token, currency,
    total_cents, status, stock_state, capture_id, erp_reference, channel, cancel_reason,
    created_at, updated_at)
SELECT 'B-' || n, 'bench-token-' || n, 'c' || (n %% 5000) || '@example.com', '{}'::jsonb, 'tok',
    'EUR', 0,
    (ARRAY['completed','completed','completed','paid','cancelled','payment_failed'])[1 + n %% 6],
    'committed', '', '', (ARRAY['api','web'])[1 + n %% 2], '',
    timestamp '2025-01-01' + (n %% 365) * interval '1 day' + (n %% 86400) * interval '1 second',
    now() - interval '1 hour'
FROM generate_series(1, %(orders)s) n;
INSERT INTO orders_orderline (order_id, product_id, sku, name, quantity, unit_price_cents)
SELECT o.id, p.id, p.sku, p.name, 1 + (o.id + k) %% 3, p.price_cents
FROM orders_order o
CROSS JOIN generate_series(0, 1) k
JOIN shop_product p ON p.sku = 'BENCH-' || (1 + (o.id * 7 + k) %% 20)
WHERE k = 0 OR o.id %% 2 = 0;
ANALYZE;
"""


def child(orders: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.memory import RssSampler
    from orders.services.backfill import sales_backfill

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(FILL, {"orders": orders})
    connection.close()
    sampler = RssSampler()
    started = time.perf_counter()
    report = sales_backfill()
    seconds = time.perf_counter() - started
    start_mb, peak_mb = sampler.stop()
    return {
        "orders": orders,
        "days": report.days,
        "seconds": round(seconds, 2),
        "rss_start_mb": start_mb,
        "rss_peak_mb": peak_mb,
    }


def django_setup(url: str) -> None:
    """Set this benchmark process up on its own database (made if missing, migrated),
    with no connection kept between uses and no per-query log."""
    os.environ["DATABASE_URL"] = url
    os.environ["DATABASE_CONN_MAX_AGE"] = "0"
    os.environ["DJANGO_DEBUG"] = "0"
    database_ensure(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def database_ensure(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DATABASE_URL"] = options.database_url
    if options.child:
        print(json.dumps(child(options.child)))
        return
    database_ensure(options.database_url)
    results = []
    for orders in options.orders:
        command = [sys.executable, __file__, "--child", str(orders)]
        command += ["--database-url", options.database_url]
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        row = results[-1]
        print(
            f"{row['orders']:>9,} orders  {row['days']} days  {row['seconds']:7.2f} s  "
            f"{row['seconds'] / row['orders'] * 100_000:6.2f} s per 100k  "
            f"RSS {row['rss_start_mb']} MB before the backfill, peak {row['rss_peak_mb']} MB"
        )
    if len(results) > 1:
        first, last = results[0], results[-1]
        times = last["seconds"] / first["seconds"]
        memory = last["rss_peak_mb"] / first["rss_peak_mb"]
        print(
            f"{last['orders'] // first['orders']}x the orders: {times:.1f}x the time, "
            f"{memory:.2f}x the peak memory"
        )
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "backfill.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
