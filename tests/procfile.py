"""The Procfile's workers as real processes: one per `worker_*` line, with its queues,
concurrency and pool, so system tests and benchmarks run the topology `make demo` runs."""

import os
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.workers import ROOT, WorkerProcess


@dataclass(frozen=True)
class WorkerSpec:
    queues: tuple[str, ...]
    concurrency: int
    pool: str


def procfile_worker_specs(procfile: Path = ROOT / "Procfile") -> dict[str, WorkerSpec]:
    """{process name: spec} for every `celery worker` line of the Procfile."""
    specs = {}
    for line in procfile.read_text().splitlines():
        name, _, command = line.partition(":")
        args = shlex.split(command)
        if "worker" not in args:
            continue
        concurrency = _option(args, "-c", "--concurrency")
        specs[name.strip()] = WorkerSpec(
            queues=tuple(_option(args, "-Q", "--queues").split(",")),
            # Without the option celery starts one pool process per CPU.
            concurrency=int(concurrency) if concurrency else os.cpu_count(),
            pool=_option(args, "-P", "--pool") or "prefork",
        )
    return specs


def _option(args: list[str], *names: str) -> str | None:
    for n, arg in enumerate(args):
        if arg in names:
            return args[n + 1]
        for name in names:
            if arg.startswith(f"{name}="):
                return arg.split("=", 1)[1]
    return None


def procfile_workers_start(
    *, env: dict[str, str], log_dir: Path, include: tuple[str, ...] = ()
) -> dict[str, WorkerProcess]:
    """Start the Procfile's workers at once (their boots overlap) and wait until each is ready."""
    workers = {
        name: WorkerProcess(
            env=env,
            log_path=log_dir / f"{name}.log",
            queues=spec.queues,
            concurrency=spec.concurrency,
            pool=spec.pool,
            include=include,
        )
        for name, spec in procfile_worker_specs().items()
    }
    with ThreadPoolExecutor(len(workers)) as pool:
        started = [pool.submit(worker.start) for worker in workers.values()]
    failures = [future.exception() for future in started if future.exception()]
    if failures:
        procfile_workers_stop(workers)
        raise failures[0]
    return workers


def procfile_workers_stop(workers: dict[str, WorkerProcess]) -> None:
    """Stop them all at once: each warm shutdown waits for its running tasks."""
    with ThreadPoolExecutor(len(workers)) as pool:
        for stopping in [pool.submit(worker.stop) for worker in workers.values()]:
            stopping.result()
