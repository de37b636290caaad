"""Benchmark: checkout latency under load, against a synchronous checkout, in one run.

    .venv/bin/python -m bench.checkout [--quick]

A production-like shop on this machine: gunicorn serving config.wsgi, PostgreSQL
(database `bench_checkout`), Redis (db 11) as the broker, Celery workers for the
pipeline's queues as in the Procfile, and the sandbox partners answering every call
after 100-500 ms. C=16 simulated customers check out through the HTTP API (with
place_orders' own functions), each starting its next checkout as soon as the last one
answered, N orders per repeat, while the workers run the pipelines of the orders placed
(saturating: it measures capacity); then the same customers paced, each pausing 0 to 2 s
before its next checkout (what a customer waits for when the shop is not flat out).

The baseline is the same checkout done synchronously: a second gunicorn, identical but
for CELERY_TASK_ALWAYS_EAGER=1, so the pipeline dispatched after commit runs inline
(payment, email, ERP sync, invoice, label, analytics) before the response is sent. The
run proves it: every baseline order had all six steps finished before its response
arrived, and no order of the shop had.

The two alternate in each repeat (shop, then baseline) so both see the same machine;
the figures are medians over the repeats. Each phase also counts the CPU time each part
spent per checkout (web server, workers, PostgreSQL backends, sandbox, load generator,
and the rest of this shared machine): with customers that never pause, latency is
C / throughput, and the CPU per checkout is what sets the throughput.

Writes bench/results/checkout.json (with every latency) and checkout_latency.png, and
when the p99 target is missed, checkout_profile.txt: a pyinstrument profile of
checkouts through the WSGI application.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the project's apps import
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
from bench.backfill import database_ensure  # noqa: E402
from harness.ports import free_port, port_answers  # noqa: E402
from harness.processes import (  # noqa: E402
    Child,
    children_start,
    children_stop,
    process_env,
    procfile_worker,
    sandbox_process,
)
from harness.procfile import procfile_worker_specs  # noqa: E402
from harness.services import bench_broker_url, bench_database_url  # noqa: E402
from orders.pipeline import PIPELINE  # noqa: E402
from shop.management.commands.place_orders import (  # noqa: E402
    REQUEST_TIMEOUT_S,
    Checkout,
    checkout_body,
    checkout_send,
    percentile,
    products_fetch,
)

DATABASE_URL = os.environ.get("BENCH_CHECKOUT_DATABASE_URL", bench_database_url("bench_checkout"))
BROKER_URL = os.environ.get("BENCH_CHECKOUT_BROKER_URL", bench_broker_url(11))
RESULTS = ROOT / "bench" / "results"

CUSTOMERS = 16
ORDERS, REPEATS = 300, 3
QUICK_ORDERS, QUICK_REPEATS = 64, 1
SANDBOX_LATENCY_MS = "100-500"
TARGET_P99_MS = 100.0
# gthread, one worker process per core (a Python process runs on one core at a time),
# 8 threads each: 16 requests in flight, as many as there are customers, so a thread
# waiting on PostgreSQL or Redis lets another run, and the synchronous baseline, whose
# requests wait seconds on the partners, is limited by those waits and not by a queue
# in front of the server (its best case, which keeps the ratio honest).
GUNICORN_WORKERS, GUNICORN_THREADS = 2, 8
# The Procfile's workers (queues, concurrency, pool), as `make demo` runs them; the bulk
# worker is left out, a checkout sends it nothing.
QUEUE_WORKERS = {
    name: spec for name, spec in procfile_worker_specs().items() if "bulk" not in spec.queues
}
STEP_NAMES = [spec.name for spec in PIPELINE]
MODES = ("async", "sync")
# The same application; the baseline's also imports the task modules (see there).
WSGI = {"async": "config.wsgi:application", "sync": "bench.sync_wsgi:application"}
# Two loads of the same 16 customers. Saturating: each checks out again the moment its
# last checkout answered, so latency is 16 / throughput and measures the machine's
# capacity. Paced: each pauses a random 0 to 2 s (1 s on average) first, as a person
# between two purchases is far slower than that; it shows what a customer waits for
# when the shop is not flat out.
PACED_THINK_S = 1.0
PACED_ORDERS, QUICK_PACED_ORDERS = 160, 48
PHASES = {  # phase: (server mode, mean think time in seconds)
    "async": ("async", 0.0),
    "sync": ("sync", 0.0),
    "async_paced": ("async", PACED_THINK_S),
    "sync_paced": ("sync", PACED_THINK_S),
}
LABELS = {
    "async": "Shopflow (pipeline on Celery workers), saturating",
    "sync": "synchronous baseline (pipeline inline), saturating",
    "async_paced": "Shopflow, paced customers",
    "sync_paced": "synchronous baseline, paced customers",
}


@dataclass(frozen=True)
class Sample:
    """One checkout as the customer saw it, and when its answer arrived (wall clock)."""

    checkout: Checkout
    received_at: datetime


class CpuMeter:
    """CPU seconds each part of the system spent during one load phase, and the whole
    machine's (the rest is other work on this shared machine)."""

    def __init__(self, parts: dict[str, list[Child]]) -> None:
        self.parts = parts
        self.started: dict[str, float] = {}
        self.backends: dict[int, float] = {}

    @staticmethod
    def _tree(pid: int, *, children: bool = True) -> float:
        import psutil

        try:
            root = psutil.Process(pid)
            processes = [root, *(root.children(recursive=True) if children else [])]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def _backends(self) -> dict[int, float]:
        """CPU seconds of each PostgreSQL backend serving the benchmark's database."""
        import psycopg

        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            pids = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            ).fetchall()
        return {pid: self._tree(pid) for (pid,) in pids}

    def _now(self) -> dict[str, float]:
        import psutil

        machine = psutil.cpu_times()
        now = {
            name: sum(self._tree(child.pid) for child in children)
            for name, children in self.parts.items()
        }
        now["load generator"] = self._tree(os.getpid(), children=False)  # not the shop
        now["machine"] = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return now

    def start(self) -> None:
        self.backends = self._backends()
        self.started = self._now()

    def stop(self) -> dict[str, float]:
        """Return CPU seconds per part since start(), with "postgres" and "others"."""
        now = self._now()
        spent = {name: now[name] - self.started[name] for name in now}
        spent["postgres"] = sum(
            cpu - self.backends.get(pid, 0.0) for pid, cpu in self._backends().items()
        )
        parts = sum(v for k, v in spent.items() if k != "machine")
        spent["others"] = max(0.0, spent.pop("machine") - parts)
        return {name: round(seconds, 2) for name, seconds in spent.items()}


def database_reset() -> None:
    """Migrate; then no orders, and a catalog of 20 products that never runs out."""
    env = {**os.environ, "DATABASE_URL": DATABASE_URL}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    import psycopg

    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute("TRUNCATE orders_order RESTART IDENTITY CASCADE")
        conn.execute("UPDATE shop_product SET is_active = false WHERE sku NOT LIKE 'CHK-%%'")
        conn.execute(
            """
            INSERT INTO shop_product (sku, name, description, price_cents, stock, is_active,
                                      is_subscription)
            SELECT 'CHK-' || n, 'Checkout bench product ' || n, '', 500 + n * 100, 1000000000,
                   true, false
            FROM generate_series(1, 20) n
            ON CONFLICT (sku) DO UPDATE SET stock = EXCLUDED.stock, is_active = true
            """
        )
        conn.execute("VACUUM ANALYZE")


def redis_client():
    import redis

    return redis.Redis.from_url(BROKER_URL)


def queues_purge() -> int:
    """Drop the messages still waiting, so a backlog left by the shop's repeat does not run
    during the baseline's. Returns how many were dropped."""
    client = redis_client()
    names = {queue for spec in QUEUE_WORKERS.values() for queue in spec.queues}
    dropped = 0
    for key in client.scan_iter(count=1000):
        # kombu keeps one list per queue and priority: "<queue>" or "<queue>\x06\x16<n>"
        if key.decode(errors="replace").split("\x06\x16")[0] in names:
            dropped += client.llen(key)
            client.delete(key)
    return dropped


def load_run(
    *, base_url: str, orders: int, customers: int = CUSTOMERS, think_s: float = 0.0
) -> list[Sample]:
    """`customers` threads check out `orders` times in all, each next one when its last
    answered, after a random pause of 0 to 2 x `think_s`."""
    limits = httpx.Limits(max_connections=customers, max_keepalive_connections=customers)
    with (
        httpx.Client(limits=limits, timeout=REQUEST_TIMEOUT_S) as client,
        ThreadPoolExecutor(max_workers=customers) as pool,
    ):
        products = products_fetch(client, base_url)

        def customer(_: int) -> Sample:
            time.sleep(random.uniform(0, 2 * think_s))
            checkout = checkout_send(client, base_url, checkout_body(products, 0.0))
            return Sample(checkout=checkout, received_at=datetime.now(UTC))

        return list(pool.map(customer, range(orders)))


def pipelines_check(samples: list[Sample]) -> dict[str, int]:
    """Count the orders whose six steps had all succeeded before their response arrived,
    and those whose pipeline has completed by now."""
    import psycopg

    received = {s.checkout.token: s.received_at for s in samples if s.checkout.token}
    with psycopg.connect(DATABASE_URL) as conn:
        rows = conn.execute(
            """
            SELECT o.token, o.status,
                   count(*) FILTER (WHERE s.status = 'succeeded'), max(s.finished_at)
            FROM orders_order o JOIN orders_step s ON s.order_id = o.id AND s.name = ANY(%s)
            WHERE o.token = ANY(%s)
            GROUP BY o.token, o.status
            """,
            (STEP_NAMES, list(received)),
        ).fetchall()
    done = [(token, last) for token, _, succeeded, last in rows if succeeded == len(STEP_NAMES)]
    return {
        "orders": len(received),
        "completed_by_end_of_load": sum(status == "completed" for _, status, _, _ in rows),
        "finished_before_response": sum(last <= received[token] for token, last in done),
    }


def latency_summary(samples: list[Sample]) -> dict[str, Any]:
    latencies = [s.checkout.latency_ms for s in samples]
    errors = Counter(s.checkout.error for s in samples if s.checkout.error)
    return {
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "errors": dict(errors),
    }


def plot_write(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for phase, (mode, think_s) in PHASES.items():
        color = "tab:blue" if mode == "async" else "tab:red"
        ordered = sorted(results["latencies_ms"][phase])
        shares = [(n + 1) / len(ordered) * 100 for n in range(len(ordered))]
        p99 = results["modes"][phase]["p99_ms"]
        ax.step(
            ordered,
            shares,
            where="post",
            color=color,
            linestyle="--" if think_s else "-",
            label=f"{LABELS[phase]}, p99 {p99} ms",
        )
    ax.axvline(TARGET_P99_MS, color="gray", linestyle="--", linewidth=1, label="p99 target 100 ms")
    ax.set_xscale("log")
    ax.set_xlabel("checkout request latency (ms, log scale)")
    ax.set_ylabel("share of checkouts at or below (%)")
    config = results["config"]
    ax.set_title(
        f"Checkout latency, {config['customers']} concurrent customers, "
        f"{config['repeats']} repeats, partners {config['sandbox_latency_ms']} ms",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def gunicorn_command(*, mode: str, port: int) -> list[str]:
    command = [
        sys.executable, "-m", "gunicorn", WSGI[mode], "--bind", f"127.0.0.1:{port}",
        "--worker-class", "gthread", "--workers", str(GUNICORN_WORKERS),
        "--threads", str(GUNICORN_THREADS),
    ]  # fmt: skip
    return command


class Shop:
    """The sandbox, one gunicorn per mode and the queue workers, started and stopped together."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.sandbox_port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.env = {
            **process_env(
                database_url=DATABASE_URL,
                broker_url=BROKER_URL,
                sandbox_url=self.sandbox_url,
                tmp_path=tmp,
                # As deployed: connections kept between requests, retries at full delay.
                conn_max_age_s=60,
                retry_delay_scale=1.0,
            ),
            "SANDBOX_LATENCY_MS": SANDBOX_LATENCY_MS,
            "DJANGO_DEBUG": "0",
        }
        self.urls: dict[str, str] = {}
        self.web: dict[str, Child] = {}
        self.sandbox: Child | None = None
        self.workers: list[Child] = []

    def __enter__(self) -> "Shop":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        self.sandbox = sandbox_process(
            port=self.sandbox_port, env=self.env, log_path=self.tmp / "sandbox.log"
        )
        for mode in MODES:
            port = free_port()
            self.urls[mode] = f"http://127.0.0.1:{port}"
            eager = {"CELERY_TASK_ALWAYS_EAGER": "1" if mode == "sync" else "0"}
            self.web[mode] = Child(
                f"web-{mode}",
                gunicorn_command(mode=mode, port=port),
                env={**self.env, **eager},
                log_path=self.tmp / f"web-{mode}.log",
                ready=lambda port=port: port_answers("127.0.0.1", port),
            )
        self.workers = [
            procfile_worker(name, env=self.env, log_dir=self.tmp) for name in QUEUE_WORKERS
        ]
        children_start(self.children())

    def children(self) -> list[Child]:
        return [child for child in [self.sandbox, *self.web.values(), *self.workers] if child]

    def stop(self) -> None:
        children_stop(self.children())

    def meter(self, mode: str) -> CpuMeter:
        return CpuMeter(
            {"web": [self.web[mode]], "workers": self.workers, "sandbox": [self.sandbox]}
        )


@dataclass(frozen=True)
class Phase:
    """One mode's load in one repeat."""

    mode: str
    samples: list[Sample]
    seconds: float
    cpu_s: dict[str, float]
    pipelines: dict[str, int]

    def summary(self) -> dict[str, Any]:
        checkouts = len(self.samples)
        return {
            **latency_summary(self.samples),
            **self.pipelines,
            "seconds": round(self.seconds, 2),
            "orders_per_s": round(checkouts / self.seconds, 1),
            "cpu_ms_per_checkout": {
                part: round(seconds / checkouts * 1000, 1) for part, seconds in self.cpu_s.items()
            },
        }


def phase_run(shop: Shop, *, phase: str, orders: int) -> Phase:
    mode, think_s = PHASES[phase]
    meter = shop.meter(mode)
    meter.start()
    started = time.perf_counter()
    samples = load_run(base_url=shop.urls[mode], orders=orders, think_s=think_s)
    seconds = time.perf_counter() - started
    cpu_s = meter.stop()
    pipelines = pipelines_check(samples)
    if mode == "async":  # the backlog must not run during the baseline's phase
        pipelines["backlog_purged"] = queues_purge()
    return Phase(mode=phase, samples=samples, seconds=seconds, cpu_s=cpu_s, pipelines=pipelines)


def run(*, quick: bool = False) -> dict[str, Any]:
    """Start the shop and the baseline, load both in turns, stop everything; return figures."""
    orders, repeats = (QUICK_ORDERS, QUICK_REPEATS) if quick else (ORDERS, REPEATS)
    paced_orders = QUICK_PACED_ORDERS if quick else PACED_ORDERS
    started = time.perf_counter()
    database_ensure(DATABASE_URL)
    database_reset()
    redis_client().flushdb()
    phases: list[Phase] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-checkout-") as tmp,
            Shop(Path(tmp)) as shop,
        ):
            for mode in MODES:  # first requests import code and open connections
                load_run(base_url=shop.urls[mode], orders=2 * CUSTOMERS)
            queues_purge()
            for repeat in range(repeats):
                for phase, (_, think_s) in PHASES.items():
                    n = paced_orders if think_s else orders
                    phases.append(phase_run(shop, phase=phase, orders=n))
                    print(f"repeat {repeat + 1} {phase}: {phases[-1].summary()}", file=sys.stderr)
    finally:
        redis_client().flushdb()
    results = results_build(
        phases, orders=orders, paced_orders=paced_orders, seconds=time.perf_counter() - started
    )
    results_write(results, profile_checkouts=50 if quick else 200)
    return {key: value for key, value in results.items() if key != "latencies_ms"}


def results_write(results: dict[str, Any], *, profile_checkouts: int) -> None:
    """Write checkout.json (with every latency) and the plot; when the target is missed, the
    profile of a checkout request that shows where its time goes."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "checkout.json").write_text(json.dumps(results, indent=1) + "\n")
    plot_write(results, RESULTS / "checkout_latency.png")
    if not results["target_met"]:
        profile_write(RESULTS / "checkout_profile.txt", checkouts=profile_checkouts)


def results_build(
    phases: list[Phase], *, orders: int, paced_orders: int, seconds: float
) -> dict[str, Any]:
    modes: dict[str, Any] = {}
    for mode in PHASES:
        repeats = [phase.summary() for phase in phases if phase.mode == mode]
        medians = {
            key: round(statistics.median(r[key] for r in repeats), 1)
            for key in ("p50_ms", "p95_ms", "p99_ms", "orders_per_s")
        }
        cpu = {
            part: round(statistics.median(r["cpu_ms_per_checkout"][part] for r in repeats), 1)
            for part in repeats[0]["cpu_ms_per_checkout"]
        }
        modes[mode] = {**medians, "cpu_ms_per_checkout": cpu, "repeats": repeats}
    ratio, ratio_paced = (
        {
            key: round(modes[f"sync{load}"][key] / modes[f"async{load}"][key], 1)
            for key in ("p50_ms", "p95_ms", "p99_ms")
        }
        for load in ("", "_paced")
    )
    return {
        "config": {
            "customers": CUSTOMERS,
            "orders_per_repeat": orders,
            "paced_orders_per_repeat": paced_orders,
            "paced_think_s": f"uniform 0 to {2 * PACED_THINK_S}",
            "repeats": len(modes["async"]["repeats"]),
            "sandbox_latency_ms": SANDBOX_LATENCY_MS,
            "gunicorn": f"gthread, {GUNICORN_WORKERS} workers x {GUNICORN_THREADS} threads",
            "celery_workers": {
                name: f"{','.join(spec.queues)}: {spec.pool} x {spec.concurrency}"
                for name, spec in QUEUE_WORKERS.items()
            },
            "cpus": os.cpu_count(),
        },
        "modes": modes,
        "ratio_sync_over_async": ratio,
        "ratio_sync_over_async_paced": ratio_paced,
        "target_p99_ms": TARGET_P99_MS,
        "target_met": modes["async"]["p99_ms"] <= TARGET_P99_MS,
        "target_met_paced": modes["async_paced"]["p99_ms"] <= TARGET_P99_MS,
        "seconds": round(seconds, 1),
        "latencies_ms": {
            mode: [
                round(s.checkout.latency_ms, 2) for p in phases if p.mode == mode for s in p.samples
            ]
            for mode in PHASES
        },
    }


def profile_child(checkouts: int) -> str:
    """Profile `checkouts` checkouts, one after the other, through the WSGI application in
    this process (as gunicorn calls it), with the pipeline published to the broker."""
    import io
    import uuid

    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from pyinstrument import Profiler

    from shop.selectors import product_list

    application = WSGIHandler()
    products = [{"sku": p.sku, "stock": p.stock} for p in product_list()]

    def checkout() -> None:
        body = json.dumps(checkout_body(products, 0.0)).encode()
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/checkout", "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4()),
        }  # fmt: skip
        statuses = []
        response = application(environ, lambda status, headers: statuses.append(status))
        b"".join(response)
        response.close()
        if not statuses[0].startswith("201"):
            raise RuntimeError(f"checkout answered {statuses[0]}")

    for _ in range(20):
        checkout()
    profiler = Profiler(interval=0.0005)
    cpu_started, started = time.process_time(), time.perf_counter()
    profiler.start()
    for _ in range(checkouts):
        checkout()
    profiler.stop()
    cpu_ms = (time.process_time() - cpu_started) / checkouts * 1000
    wall_ms = (time.perf_counter() - started) / checkouts * 1000
    header = (
        f"{checkouts} checkouts of 1-3 lines, one after the other, through the WSGI application "
        f"(DEBUG off, PostgreSQL, Redis broker), under pyinstrument: {wall_ms:.1f} ms wall and "
        f"{cpu_ms:.1f} ms CPU of this process per checkout (both inflated by the profiler)."
    )
    return header + "\n" + profiler.output_text(unicode=False, color=False, show_all=False)


def profile_write(path: Path, *, checkouts: int = 200) -> None:
    """Profile checkouts in a child process set up like the benchmark's web server."""
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "CELERY_BROKER_URL": BROKER_URL,
        "SHOPFLOW_REDIS_URL": BROKER_URL,
        "DJANGO_DEBUG": "0",
        "RATE_LIMITS_ENABLED": "0",  # as the benchmark's web servers (harness process_env)
    }
    command = [sys.executable, "-m", "bench.checkout", "--profile-child", str(checkouts)]
    try:
        out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    finally:
        redis_client().flushdb()  # the pipelines it published run nowhere
    path.write_text(out.stdout)


def report_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for mode in PHASES:
        row = results["modes"][mode]
        inline = sum(r["finished_before_response"] for r in row["repeats"])
        placed = sum(r["orders"] for r in row["repeats"])
        cpu = ", ".join(f"{part} {ms}" for part, ms in row["cpu_ms_per_checkout"].items())
        lines += [
            f"{LABELS[mode]}: p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, "
            f"p99 {row['p99_ms']} ms, {row['orders_per_s']} checkouts/s",
            f"    all six steps done before the response: {inline} of {placed} orders",
            f"    CPU ms per checkout: {cpu}",
        ]
    for load in ("", "_paced"):
        ratio = results[f"ratio_sync_over_async{load}"]
        verdict = "met" if results[f"target_met{load}"] else "MISSED"
        name = "paced" if load else "saturating"
        lines += [
            f"{name}: synchronous / Shopflow: p50 {ratio['p50_ms']}x, p95 {ratio['p95_ms']}x, "
            f"p99 {ratio['p99_ms']}x; target Shopflow p99 <= {TARGET_P99_MS:.0f} ms at "
            f"{CUSTOMERS} customers: {verdict}",
        ]
    lines.append(f"({results['seconds']} s from the start to the last load)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short repeat (a smoke run)")
    parser.add_argument("--profile-child", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.profile_child:
        print(profile_child(options.profile_child))
        return
    results = run(quick=options.quick)
    print("\n".join(report_lines(results)))
    written = ["checkout.json", "checkout_latency.png"]
    if not results["target_met"]:
        written.append("checkout_profile.txt (where a checkout's time goes)")
    print(f"wrote bench/results/{', '.join(written)}")


if __name__ == "__main__":
    main()
