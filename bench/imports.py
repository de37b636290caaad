"""Benchmark: a 100k-row catalog import against a raw bulk_create of the same rows.

    .venv/bin/python bench/imports.py [--rows 100000] [--database-url URL]

Both run in fresh processes on the same PostgreSQL database, one after the other, so
the ratio compares like with like on this (shared, noisy) machine. Writes
bench/results/imports.json.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the project's apps import
from harness.services import bench_database_url  # noqa: E402

DEFAULT_URL = bench_database_url("shopflow_bench")


def csv_write(path: Path, rows: int) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["sku", "name", "price_cents", "stock", "description"])
        for n in range(rows):
            writer.writerow(
                [f"IMP-{n:07d}", f"Imported product {n}", 100 + n % 9000, n % 500, "x" * 40]
            )


def child(mode: str, path: str) -> dict:
    import django

    django.setup()
    from django.core.files import File
    from django.core.management import call_command

    from bench.memory import RssSampler
    from shop.imports import catalog_job_run
    from shop.models import CatalogJob, Product

    call_command("migrate", verbosity=0)
    Product.objects.filter(sku__startswith="IMP-").delete()
    sampler = RssSampler()
    started = time.perf_counter()
    if mode == "import":
        with open(path, "rb") as content:
            job = CatalogJob()
            job.file.save("bench.csv", File(content))
        job = catalog_job_run(job_id=job.pk)
        rows = job.rows_applied
    else:  # the ceiling: the same rows read and bulk-created with nothing else
        with open(path, newline="") as file:
            reader = csv.DictReader(file)
            products = [
                Product(sku=r["sku"], name=r["name"], price_cents=int(r["price_cents"]),
                        stock=int(r["stock"]), description=r["description"])
                for r in reader
            ]  # fmt: skip
        Product.objects.bulk_create(products, batch_size=1000)
        rows = len(products)
    seconds = time.perf_counter() - started
    start_mb, peak_mb = sampler.stop()
    return {
        "mode": mode,
        "rows": rows,
        "seconds": round(seconds, 2),
        "rss_start_mb": start_mb,
        "rss_peak_mb": peak_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DATABASE_URL"] = options.database_url
    if options.child:
        print(json.dumps(child(*options.child)))
        return
    from bench.backfill import database_ensure

    database_ensure(options.database_url)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "catalog.csv"
        csv_write(path, options.rows)
        os.environ["SHOPFLOW_MEDIA_ROOT"] = tmp
        os.environ["SHOPFLOW_PRIVATE_MEDIA_ROOT"] = tmp  # the uploaded feed is a private file
        results = {}
        for mode in ("bulk_create", "import"):
            # DEBUG off as in production: Django keeps no log of every query.
            os.environ["DJANGO_DEBUG"] = "0"
            command = [sys.executable, __file__, "--child", mode, str(path)]
            command += ["--database-url", options.database_url]
            out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    for mode, row in results.items():
        print(
            f"{mode:>11}: {row['rows']:,} rows in {row['seconds']:.2f} s = "
            f"{row['rows'] / row['seconds']:,.0f} rows/s, RSS {row['rss_start_mb']} MB at start, "
            f"peak {row['rss_peak_mb']} MB"
        )
    ratio = results["import"]["seconds"] / results["bulk_create"]["seconds"]
    print(f"import takes {ratio:.2f}x the time of a raw bulk_create of the same rows")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "imports.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
