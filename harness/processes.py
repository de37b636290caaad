"""Child processes for tests and benchmarks: started with an environment in their own
session (so a kill takes the whole group), logging to a file, waited on until ready,
SIGKILLed and restarted by PID; the Procfile's workers and the sandbox among them."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import psutil

from config.queues import QUEUE_NAMES
from harness.ports import port_answers
from harness.procfile import (
    ROOT,
    WorkerSpec,
    is_worker,
    option_drop,
    procfile_lines,
    worker_spec,
)

T = TypeVar("T")


def process_env(
    *,
    database_url: str,
    broker_url: str,
    sandbox_url: str,
    tmp_path: Path,
    conn_max_age_s: int = 0,
    retry_delay_scale: float = 0.01,
) -> dict[str, str]:
    """Environment for the processes a test or benchmark starts: its database, broker,
    sandbox, media and mail directories, abuse limits off. The defaults suit a test run: no
    connection kept open to hold up the database's teardown, retries a hundred times
    quicker."""
    return {
        "SHOPFLOW_ENV": "test",
        "DATABASE_URL": database_url,
        "DATABASE_CONN_MAX_AGE": str(conn_max_age_s),
        "CELERY_BROKER_URL": broker_url,
        "SHOPFLOW_REDIS_URL": broker_url,
        "SANDBOX_URL": sandbox_url,
        "SHOPFLOW_MEDIA_ROOT": str(tmp_path / "media"),
        "SHOPFLOW_PRIVATE_MEDIA_ROOT": str(tmp_path / "private"),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
        "PIPELINE_RETRY_DELAY_SCALE": str(retry_delay_scale),
        # Attempts alone bound retries, as the tests of failing partners expect.
        "PIPELINE_RETRY_BUDGET_SCALE": "0",
        # Tests and benchmarks check out many times from 127.0.0.1.
        "RATE_LIMITS_ENABLED": "0",
    }


def wait_for(condition: Callable[[], T], *, timeout: float, what: str) -> T:
    """Poll condition until it gives something true, and return that."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)
    return found


def interpreted(argv: list[str]) -> list[str]:
    """A Procfile command run by this interpreter (`python x`, `celery x` as `-m celery x`)."""
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    return [sys.executable, "-m", *argv]


class Child:
    """A process started with an environment in its own session, logging to a file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        log_path: Path,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.ready = ready
        self.process: subprocess.Popen | None = None
        self.started_at: float | None = None  # time.time(), this machine's clock
        self._log_start = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self, *, timeout: float = 60) -> "Child":
        """Start the process and wait until it is ready (when it says how to tell)."""
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.started_at = time.time()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self.ready:
            self.wait_until(self.ready, timeout=timeout)
        return self

    def wait_until(self, ready: Callable[[], bool], *, timeout: float = 60) -> None:
        """Wait until ready() holds; fail at once if the process exits meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; see {self.log_path}:\n"
                    f"{self.log()[-3000:]}"
                )
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready within {timeout}s; see {self.log_path}")

    def log(self) -> str:
        """What the process wrote since it was last started."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    def pool_pids(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.pid).children()]

    def kill(self) -> list[int]:
        """SIGKILL the process and its whole group at once; return the pids that died."""
        pids = [self.pid, *self.pool_pids()]
        os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()
        return pids

    def stop(self, *, timeout: float = 20) -> None:
        """SIGTERM (a warm shutdown for celery and gunicorn), then kill what is left of the
        group: its pool processes must not outlive it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def restart(self, *, timeout: float = 60) -> "Child":
        """Start it again, with the same command and environment, as a supervisor would."""
        self.stop()
        return self.start(timeout=timeout)


class Worker(Child):
    """A `celery worker` (and its pool) from a Procfile-style command, under a node name
    of its own and ready when its log says so."""

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str],
        log_path: Path,
        include: tuple[str, ...] = (),
        name: str = "worker",
        machine: str | None = None,
        clock_offset_s: float | None = None,
    ) -> None:
        self.spec = worker_spec(argv)
        self.node = f"{name}-{uuid.uuid4().hex[:8]}@localhost"
        # No gossip or mingle: a worker of a test run talks to no other worker.
        command = [
            *option_drop(argv, "-n", "--hostname"),
            "-n", self.node, "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        if clock_offset_s is not None:
            # A wall clock that many seconds off, in this process alone (harness/clock.py).
            include = (*include, "harness.clock")
            env = {**env, "SHOPFLOW_CLOCK_OFFSET_S": str(clock_offset_s)}
        if include:
            command += ["--include", ",".join(include)]
        command = interpreted(command)
        if machine:
            # "Another machine": a UTS namespace of its own with another host name (root
            # only), so nothing can tell it is this one by comparing host names.
            command = [
                "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', machine, *command
            ]  # fmt: skip
        super().__init__(
            name,
            command,
            env=env,
            log_path=log_path,
            ready=lambda: f"{self.node} ready." in self.log(),
        )

    def deliveries_ended(self, task_id: str) -> int:
        """How many deliveries of the task this worker has finished: its log's lines of a
        run that succeeded, and of a duplicate it refused (ignored)."""
        log = self.log()
        return sum(log.count(f"[{task_id}] {end}") for end in ("succeeded", "ignored"))


def queues_worker(
    *,
    env: dict[str, str],
    log_path: Path,
    queues: tuple[str, ...] = QUEUE_NAMES,
    concurrency: int = 4,
    pool: str = "prefork",
    include: tuple[str, ...] = (),
) -> Worker:
    """A worker consuming the queues (all of them unless told), not started."""
    spec = WorkerSpec(queues=queues, concurrency=concurrency, pool=pool)
    return Worker(spec.argv(), env=env, log_path=log_path, include=include)


def procfile_worker(
    name: str,
    *,
    env: dict[str, str],
    log_dir: Path,
    include: tuple[str, ...] = (),
    machine: str | None = None,
    clock_offset_s: float | None = None,
) -> Worker:
    """The Procfile's worker line `name` as it is written (its pool and concurrency), not
    started; on `machine`, a host name of its own, and with a wall clock clock_offset_s
    seconds off, when given (Worker)."""
    return Worker(
        procfile_lines()[name],
        env=env,
        log_path=log_dir / (f"{name}@{machine}.log" if machine else f"{name}.log"),
        include=include,
        name=name,
        machine=machine,
        clock_offset_s=clock_offset_s,
    )


def procfile_workers(
    *, env: dict[str, str], log_dir: Path, include: tuple[str, ...] = ()
) -> dict[str, Worker]:
    """{name: worker} for every `celery worker` line of the Procfile, not started."""
    return {
        name: procfile_worker(name, env=env, log_dir=log_dir, include=include)
        for name, argv in procfile_lines().items()
        if is_worker(argv)
    }


def children_start(children: Iterable[Child], *, timeout: float = 60) -> None:
    """Start them at once (their boots overlap) and wait until each is ready; when one
    fails, stop them all and raise its error."""
    children = list(children)
    if not children:
        return
    with ThreadPoolExecutor(len(children)) as pool:
        started = [pool.submit(child.start, timeout=timeout) for child in children]
    failures = [future.exception() for future in started if future.exception()]
    if failures:
        children_stop(children)
        raise failures[0]


def children_stop(children: Iterable[Child]) -> None:
    """Stop them at once: each warm shutdown waits for its running tasks."""
    children = list(children)
    if not children:
        return
    with ThreadPoolExecutor(len(children)) as pool:
        for stopping in [pool.submit(child.stop) for child in children]:
            stopping.result()


def sandbox_process(*, port: int, env: dict[str, str], log_path: Path) -> Child:
    """The partner sandbox (`manage.py run_sandbox`) on port, not started; ready when it
    accepts connections."""
    return Child(
        "sandbox",
        [sys.executable, "manage.py", "run_sandbox", "--port", str(port)],
        env=env,
        log_path=log_path,
        ready=lambda: port_answers("127.0.0.1", port),
    )
