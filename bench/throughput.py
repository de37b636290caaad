"""Benchmark: orders fully processed per second, against a raw Celery chain's ceiling.

    .venv/bin/python -m bench.throughput [--quick]

Everything runs on this machine as real processes: the sandbox partners
(`manage.py run_sandbox`), Celery workers, PostgreSQL database `bench_throughput`
(created and migrated here) and Redis database 10 as the broker.

1. Zero partner latency: orders per second from dispatch until all six steps of
   every order succeeded, against chains of six no-op tasks (bench/chain_tasks.py,
   each on the queue of the step in its place) on the same workers, alternated in
   the same run; medians over repeats, and their ratio.
2. Partner latency of 100-500 ms per call: orders per second with one worker
   serving the pipeline's queues, for each pool (prefork, threads) and concurrency
   (2, 4, 8, 16); then the Procfile's own workers (their pools and concurrency).

Orders are placed through the checkout service (no HTTP) before the clock starts;
their pipelines are published the way the web process publishes them. Writes
bench/results/throughput.json and bench/results/throughput_concurrency.png.

    .venv/bin/python -m bench.throughput --profile [ORDERS]

Where a worker's time goes: one prefork pool process (concurrency 1) on the pipeline's
queues runs ORDERS orders (default 40) and as many raw chains at zero partner latency
under pyinstrument (bench/chain_tasks.py, task time only), and writes the tree to
bench/results/throughput_profile.txt.
"""

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the project's apps import
from harness.ports import free_port  # noqa: E402
from harness.processes import (  # noqa: E402
    Worker,
    children_start,
    children_stop,
    process_env,
    sandbox_process,
)
from harness.procfile import WorkerSpec, is_worker, procfile_lines, worker_spec  # noqa: E402
from harness.services import bench_broker_url, bench_database_url  # noqa: E402

DATABASE_URL = os.environ.get(
    "BENCH_THROUGHPUT_DATABASE_URL", bench_database_url("bench_throughput")
)
BROKER_URL = os.environ.get("BENCH_THROUGHPUT_BROKER_URL", bench_broker_url(10))
RESULTS = ROOT / "bench" / "results"
PIPELINE_QUEUES = ("high", "medium", "low")
PARTNER_LATENCY_MS = (100, 500)
POOLS = ("prefork", "threads")
BATCH_TIMEOUT_S = 120


def _environment(tmp: Path, sandbox_url: str) -> dict[str, str]:
    """Settings for this process and the ones it starts: production-like, our own stores."""
    return {
        **process_env(
            database_url=DATABASE_URL,
            broker_url=BROKER_URL,
            sandbox_url=sandbox_url,
            tmp_path=tmp,
            # As deployed: connections kept between tasks, retries at full delay.
            conn_max_age_s=60,
            retry_delay_scale=1.0,
        ),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "0",  # as in production: no log of every query
        "SANDBOX_LATENCY_MS": "0",
        "LOG_LEVEL": "WARNING",
    }


# --- processes ----------------------------------------------------------------------------


def pipeline_workers() -> list[list[str]]:
    """The Procfile's worker lines that serve the pipeline's queues."""
    return [
        argv
        for argv in procfile_lines().values()
        if is_worker(argv) and set(worker_spec(argv).queues) & set(PIPELINE_QUEUES)
    ]


@contextmanager
def workers_running(commands: list[list[str]], env: dict[str, str], tmp: Path):
    """Start a worker per `celery worker` command, with the no-op chain task loaded."""
    workers = [
        Worker(
            argv,
            env=env,
            log_path=tmp / f"worker-{uuid.uuid4().hex[:6]}.log",
            include=("bench.chain_tasks",),
        )
        for argv in commands
    ]
    children_start(workers)
    try:
        yield workers
    finally:
        children_stop(workers)


# --- measurements -------------------------------------------------------------------------


class Bench:
    """Places orders, publishes pipelines and chains, and times them to the end."""

    def __init__(self, sandbox_url: str) -> None:
        import httpx

        from kit.redis import shared_redis
        from orders.receivers import dispatch_pipeline_on_commit
        from orders.signals import order_placed
        from shop.models import Product

        # Orders are placed before the clock starts; their pipelines are published when
        # the batch starts, as the receiver would have done after each commit.
        order_placed.disconnect(dispatch_pipeline_on_commit)
        self.redis = shared_redis()
        self.sandbox = httpx.Client(base_url=sandbox_url, timeout=10)
        self.latency = (0, 0)
        self.skus = []
        for sku, price in (("BENCH-TP-MUG", 1250), ("BENCH-TP-TEE", 2400)):
            Product.objects.update_or_create(
                sku=sku,
                defaults={"name": f"Bench {sku}", "price_cents": price, "stock": 10**9},
            )
            self.skus.append(sku)

    def latency_set(self, bounds: tuple[int, int]) -> None:
        self.latency = bounds
        self.sandbox.post("/control", json={"latency_ms": list(bounds)}).raise_for_status()

    def sandbox_reset(self) -> None:
        """Empty the sandbox's ledger (its memory); a reset restores its default config too."""
        self.sandbox.post("/reset").raise_for_status()
        self.latency_set(self.latency)

    def orders_place(self, count: int) -> list[int]:
        from harness.rig import checkout_body
        from shop.services import checkout_parse, checkout_place

        body = checkout_body((self.skus[0], 2), (self.skus[1], 1))
        return [checkout_place(request=checkout_parse(body)).order.pk for _ in range(count)]

    def pipelines(self, count: int) -> float:
        """Seconds from publishing `count` pipelines to the last step of the last order."""
        from django.db.models import Max

        from engine.dispatch import pipeline_dispatch
        from orders.models import Order, Step

        self.sandbox_reset()
        ids = self.orders_place(count)
        started = time.time()
        for pk in ids:
            pipeline_dispatch(subject_id=pk)
        orders = Order.objects.filter(pk__in=ids)
        deadline = time.monotonic() + BATCH_TIMEOUT_S
        while orders.filter(status=Order.Status.COMPLETED).count() < count:
            stuck = orders.filter(
                status__in=[Order.Status.NEEDS_ATTENTION, Order.Status.PAYMENT_FAILED]
            )
            if stuck.exists() or time.monotonic() > deadline:
                rows = (
                    Step.objects.filter(order__in=orders)
                    .exclude(status=Step.Status.SUCCEEDED)
                    .values_list("name", "status", "last_error")[:5]
                )
                raise RuntimeError(
                    f"orders did not complete: {[(n, s, e[:300]) for n, s, e in rows]}"
                )
            time.sleep(0.05)
        ended = Step.objects.filter(order_id__in=ids).aggregate(end=Max("finished_at"))["end"]
        return ended.timestamp() - started

    def chains(self, count: int) -> float:
        """Seconds from publishing `count` raw six-task chains to the end of the last one."""
        from bench.chain_tasks import chain_done_key, noop_chain

        run = uuid.uuid4().hex
        key = chain_done_key(run)
        started = time.time()
        for _ in range(count):
            # The raw ceiling: bare chains published straight away, no transaction to wait for.
            noop_chain(run).apply_async()
        deadline = time.monotonic() + BATCH_TIMEOUT_S
        while self.redis.llen(key) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"chains did not finish: {self.redis.llen(key)} of {count}")
            time.sleep(0.01)
        ended = max(float(t) for t in self.redis.lrange(key, 0, -1))
        self.redis.delete(key)
        return ended - started


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # stdout carries the figures


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 2)


def workers_cpu_s(workers) -> float:
    """CPU seconds the workers and their pool processes have used: a figure the other
    processes on this shared machine inflate far less than the elapsed time."""
    import psutil

    total = 0.0
    for worker in workers:
        main = psutil.Process(worker.process.pid)
        for process in (main, *main.children(recursive=True)):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def workers_rss_mb(workers) -> float:
    """Resident memory of the workers and their pool processes."""
    import psutil

    total = 0
    for worker in workers:
        main = psutil.Process(worker.process.pid)
        total += sum(p.memory_info().rss for p in (main, *main.children(recursive=True)))
    return round(total / 2**20)


def measured(count: int, timed, workers) -> tuple[float, float]:
    """(units per second, worker CPU milliseconds per unit) of one timed batch."""
    cpu = workers_cpu_s(workers)
    seconds = timed(count)
    return _rate(count, seconds), round((workers_cpu_s(workers) - cpu) * 1000 / count, 1)


def ceiling_compare(bench: Bench, workers, *, orders: int, repeats: int) -> dict:
    """Pipelines and raw chains, alternated on the same workers, zero partner latency."""
    bench.latency_set((0, 0))
    bench.pipelines(3)  # warm-up: imports, connections, pool processes
    bench.chains(10)
    pipeline, chain = [], []
    for _ in range(repeats):
        chain.append(measured(orders, bench.chains, workers))
        pipeline.append(measured(orders, bench.pipelines, workers))
    result = {
        "orders_per_repeat": orders,
        "pipeline_orders_per_s": [rate for rate, _ in pipeline],
        "raw_chain_per_s": [rate for rate, _ in chain],
        "pipeline_median": statistics.median(rate for rate, _ in pipeline),
        "raw_chain_median": statistics.median(rate for rate, _ in chain),
        "pipeline_worker_cpu_ms_per_order": statistics.median(cpu for _, cpu in pipeline),
        "raw_chain_worker_cpu_ms_per_chain": statistics.median(cpu for _, cpu in chain),
    }
    result["ratio"] = round(result["pipeline_median"] / result["raw_chain_median"], 3)
    return result


def with_latency(bench: Bench, workers, *, orders: int, repeats: int) -> dict:
    bench.latency_set(PARTNER_LATENCY_MS)
    bench.pipelines(2)  # warm-up
    runs = [measured(orders, bench.pipelines, workers) for _ in range(repeats)]
    return {
        "orders": orders,
        "orders_per_s": [rate for rate, _ in runs],
        "median": statistics.median(rate for rate, _ in runs),
        "worker_cpu_ms_per_order": statistics.median(cpu for _, cpu in runs),
        "workers_rss_mb": workers_rss_mb(workers),
    }


def run(*, quick: bool = False, ceiling_only: bool = False) -> dict:
    """Measure in a child process (its own Django settings and signal receivers, whatever
    ran before in this one), write the JSON and the plot, and return the figures."""
    started = time.monotonic()
    command = [sys.executable, "-m", "bench.throughput", "--measure"]
    if quick:
        command.append("--quick")
    if ceiling_only:
        command.append("--ceiling-only")
    # The child's progress goes to stderr, shown as it comes; its figures come on stdout.
    out = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
    results = json.loads(out.stdout.strip().splitlines()[-1])
    results["seconds"] = round(time.monotonic() - started, 1)
    if ceiling_only:
        return results
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "throughput.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, RESULTS / "throughput_concurrency.png")
    return results


@contextmanager
def bench_ready():
    """(bench, env, tmp): this benchmark's database migrated, its broker database empty,
    the sandbox running, and Django set up in this process with the same settings."""
    from bench.backfill import database_ensure

    database_ensure(DATABASE_URL)
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        port = free_port()
        sandbox_url = f"http://127.0.0.1:{port}"
        env = _environment(tmp, sandbox_url)
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command

        from kit.redis import shared_redis

        call_command("migrate", verbosity=0)
        shared_redis().flushdb()  # database 10 is this benchmark's alone
        sandbox = sandbox_process(port=port, env=env, log_path=tmp / "sandbox.log").start()
        stack.callback(sandbox.stop)
        yield Bench(sandbox_url), env, tmp


def measure(*, quick: bool, ceiling_only: bool = False) -> dict:
    concurrencies = (2, 8) if quick else (2, 4, 8, 16)
    repeats = 1 if quick else 3
    with bench_ready() as (bench, env, tmp):
        layout = pipeline_workers()
        results: dict = {
            "procfile_workers": [dataclasses.asdict(worker_spec(argv)) for argv in layout],
            "partner_latency_ms": list(PARTNER_LATENCY_MS),
        }
        with workers_running(layout, env, tmp) as workers:
            results["zero_latency"] = ceiling_compare(
                bench, workers, orders=40 if quick else 150, repeats=repeats
            )
            zero = results["zero_latency"]
            _progress(
                f"  zero latency: pipeline {zero['pipeline_median']:.2f} orders/s, "
                f"raw chain {zero['raw_chain_median']:.2f}/s, ratio {zero['ratio']:.2f}"
            )
            if ceiling_only:
                return results
            results["procfile_with_latency"] = with_latency(
                bench, workers, orders=30 if quick else 80, repeats=repeats
            )
            latency = results["procfile_with_latency"]["median"]
            _progress(f"  partner latency, the Procfile's workers: {latency:.2f} orders/s")
        sweep = []
        for pool in POOLS:
            for concurrency in concurrencies:
                single = [WorkerSpec(PIPELINE_QUEUES, concurrency, pool).argv()]
                with workers_running(single, env, tmp) as workers:
                    point = with_latency(bench, workers, orders=5 * concurrency, repeats=1)
                sweep.append({"pool": pool, "concurrency": concurrency, **point})
                _progress(f"  one worker, {pool} x{concurrency}: {point['median']:.2f} orders/s")
        results["concurrency_sweep"] = sweep
    results["latency_vs_zero_latency"] = round(
        results["procfile_with_latency"]["median"] / results["zero_latency"]["pipeline_median"], 3
    )
    return results


def profile(*, orders: int) -> Path:
    """Profile one prefork pool process running `orders` pipelines and as many raw chains
    (zero partner latency); write the tree to bench/results/throughput_profile.txt."""
    with bench_ready() as (bench, env, tmp):
        bench.latency_set((0, 0))
        written = tmp / "profile"
        single = [WorkerSpec(PIPELINE_QUEUES, 1, "prefork").argv()]
        with workers_running(single, {**env, "BENCH_PROFILE": str(written)}, tmp) as workers:
            bench.pipelines(3)  # warm-up, profiled too: imports and connections show apart
            cpu = workers_cpu_s(workers)
            bench.pipelines(orders)
            pipeline_cpu = workers_cpu_s(workers) - cpu
            bench.chains(orders)
            chain_cpu = workers_cpu_s(workers) - cpu - pipeline_cpu
        (text,) = [p.read_text() for p in tmp.glob("profile.*") if p.suffix != ".pyisession"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "throughput_profile.txt"
    header = (
        f"# pyinstrument, one prefork pool process (concurrency 1, queues "
        f"{','.join(PIPELINE_QUEUES)}) running every task of {orders + 3} orders and {orders} "
        f"raw chains at zero partner latency (python -m bench.throughput --profile {orders});\n"
        f"# worker CPU, profiler included: {pipeline_cpu * 1000 / orders:.0f} ms an order, "
        f"{chain_cpu * 1000 / orders:.0f} ms a raw chain\n"
    )
    path.write_text(header + text)
    return path


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for pool in POOLS:
        points = [row for row in results["concurrency_sweep"] if row["pool"] == pool]
        axes.plot(
            [row["concurrency"] for row in points],
            [row["median"] for row in points],
            marker="o",
            label=f"one worker, {pool} pool",
        )
    procfile = results["procfile_with_latency"]["median"]
    layout = ", ".join(
        f"{'/'.join(w['queues'])} {w['pool']} x{w['concurrency']}"
        for w in results["procfile_workers"]
    )
    axes.axhline(procfile, color="grey", linestyle="--", label=f"Procfile: {layout}")
    axes.set_xscale("log", base=2)
    axes.set_xticks([row["concurrency"] for row in results["concurrency_sweep"]])
    axes.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.set_xlabel("worker concurrency (high, medium and low queues)")
    axes.set_ylabel("orders fully processed per second")
    low, high = results["partner_latency_ms"]
    axes.set_title(f"Pipeline throughput, partner latency {low}-{high} ms per call")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def report(results: dict) -> str:
    zero = results["zero_latency"]
    latency = results["procfile_with_latency"]
    lines = [
        "Zero partner latency, the Procfile's workers "
        + ", ".join(
            f"{w['pool']} x{w['concurrency']} ({','.join(w['queues'])})"
            for w in results["procfile_workers"]
        ),  # fmt: skip
        f"  pipeline:        {zero['pipeline_median']:.1f} orders/s "
        f"(median of {zero['pipeline_orders_per_s']}, {zero['orders_per_repeat']} orders each)",
        f"  raw 6-task chain: {zero['raw_chain_median']:.1f} chains/s "
        f"(median of {zero['raw_chain_per_s']})",
        f"  ratio:           {zero['ratio']:.2f} (target >= 0.5)",
        f"  worker CPU:      {zero['pipeline_worker_cpu_ms_per_order']:.0f} ms per order, "
        f"{zero['raw_chain_worker_cpu_ms_per_chain']:.0f} ms per raw chain",
        f"Partner latency {results['partner_latency_ms'][0]}-{results['partner_latency_ms'][1]}"
        f" ms per call, the Procfile's workers: {latency['median']:.1f} orders/s "
        f"(median of {latency['orders_per_s']}), "
        f"{results['latency_vs_zero_latency']:.2f} of the zero-latency rate (target >= 0.5)",
        "One worker on high,medium,low with partner latency (orders/s):",
    ]
    for pool in POOLS:
        rows = [r for r in results["concurrency_sweep"] if r["pool"] == pool]
        lines.append(
            f"  {pool:>8}: " + "  ".join(f"x{r['concurrency']} {r['median']:.1f}" for r in rows)
        )
        lines.append(
            "            worker CPU ms/order, RSS MB: "
            + "  ".join(
                f"x{r['concurrency']} {r['worker_cpu_ms_per_order']:.0f}/{r['workers_rss_mb']}"
                for r in rows
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer orders and points")
    parser.add_argument(
        "--ceiling-only",
        action="store_true",
        help="only the zero-latency pipeline against the raw chain (nothing written)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=40,
        metavar="ORDERS",
        help="profile one prefork pool process running ORDERS orders (default 40)",
    )
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.profile:
        print(f"wrote {profile(orders=options.profile)}")
        return
    if options.measure:
        print(json.dumps(measure(quick=options.quick, ceiling_only=options.ceiling_only)))
        return
    results = run(quick=options.quick, ceiling_only=options.ceiling_only)
    if options.ceiling_only:
        print(json.dumps(results["zero_latency"], indent=2))
        return
    print(report(results))
    written = "bench/results/throughput.json and throughput_concurrency.png"
    print(f"({results['seconds']} s; wrote {written})")


if __name__ == "__main__":
    main()
