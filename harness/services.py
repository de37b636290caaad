"""The servers a command needs, brought by the project when none answers.

python -m harness.services run [--browser] -- COMMAND...
    `make test` and `make bench`: use TEST_DATABASE_URL and TEST_BROKER_URL where
    they answer; otherwise start a throwaway PostgreSQL and Redis of our own under
    var/, run COMMAND with DATABASE_URL and CELERY_BROKER_URL pointing at them, stop
    them afterwards. A server we did not start is never stopped or changed.
python -m harness.services postgres [--url DATABASE_URL] [--dir var/postgres]
    The demo's PostgreSQL in the foreground (a Procfile line) when none answers at URL
    (default: settings' DEMO_DATABASE_URL), its data kept across restarts; SIGTERM
    shuts it down cleanly. Idles when URL is another database.
python -m harness.services redis [--url URL] [--dir var/redis]
    The demo's Redis in the foreground when none answers at URL; otherwise idles, so
    a supervisor that restarts exited processes leaves it be.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlparse

import psutil

from harness.browser import chromium_ensure
from harness.ports import free_port
from harness.postgres import (
    POSTGRES_FAST_SHUTDOWN,
    Postgres,
    postgres_answers,
    postgres_stop,
)
from harness.redis import redis_answers, redis_start

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
DEFAULT_TEST_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_TEST_BROKER_URL = "redis://127.0.0.1:6379/15"
DEMO_DATABASE_URL = "postgres://postgres@127.0.0.1:5433/shopflow"  # as config/settings.py


def bench_database_url(name: str) -> str:
    """A benchmark's own database on the server `make bench` gave it (DATABASE_URL)."""
    server = os.environ.get("DATABASE_URL") or DEFAULT_TEST_DATABASE_URL
    return urlparse(server)._replace(path=f"/{name}").geturl()


def bench_broker_url(database: int) -> str:
    """A benchmark's own Redis database on the broker `make bench` gave it."""
    server = os.environ.get("CELERY_BROKER_URL") or DEFAULT_TEST_BROKER_URL
    return urlparse(server)._replace(path=f"/{database}").geturl()


def say(message: str) -> None:
    print(f"[services] {message}", flush=True)


@contextmanager
def database_for_tests(url: str):
    """The URL of a PostgreSQL for a test run: url if it answers, else a throwaway one."""
    if postgres_answers(url):
        say(f"PostgreSQL: using the server that answers at {_shown(url)}")
        yield url
        return
    port = free_port()
    # A directory per run: a run inside a run (the harness's own tests) has its own.
    server = Postgres(datadir=VAR / "test-postgres" / str(port), port=port, throwaway=True)
    started = time.monotonic()
    process = server.spawn()
    try:
        server.wait_ready(process)
        own = server.database_ensure(urlparse(url).path.lstrip("/") or "test")
        say(
            f"PostgreSQL: nothing answers at {_shown(url)}; started our own (pid {process.pid})"
            f" at {own} in {time.monotonic() - started:.1f}s"
        )
        yield own
    finally:
        postgres_stop(process)
        server.wipe()
        say(f"PostgreSQL: stopped ours (pid {process.pid}) and removed its data")


@contextmanager
def broker_for_tests(url: str):
    """The URL of a Redis for a test run: url if it answers, else a throwaway one."""
    if not url.startswith("redis://") or redis_answers(url):
        say(f"Redis: using the server that answers at {url}")
        yield url
        return
    port = free_port()
    process = redis_start(port=port, workdir=VAR / "test-redis")
    database = urlparse(url).path.lstrip("/") or "0"
    say(f"Redis: nothing answers at {url}; started our own (pid {process.pid}) on port {port}")
    try:
        yield f"redis://127.0.0.1:{port}/{database}"
    finally:
        process.terminate()
        process.wait(10)
        say(f"Redis: stopped ours (pid {process.pid})")


def run(command: list[str], *, browser: bool) -> int:
    env = dict(os.environ)
    if browser:
        env["CHROMIUM"] = chromium_ensure()
        say(f"Chromium: {env['CHROMIUM']}")
    with ExitStack() as stack:
        env["DATABASE_URL"] = stack.enter_context(
            database_for_tests(os.environ.get("TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL)
        )
        env["CELERY_BROKER_URL"] = stack.enter_context(
            broker_for_tests(os.environ.get("TEST_BROKER_URL") or DEFAULT_TEST_BROKER_URL)
        )
        child = subprocess.Popen(command, env=env, cwd=ROOT)
        # Ctrl-C reaches the child too (same process group); wait for it to finish.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return child.wait()


def postgres_serve(*, url: str, datadir: Path) -> int:
    parsed = urlparse(url)
    if not url.startswith("postgres") or parsed.hostname not in ("127.0.0.1", "localhost"):
        say(f"database is {_shown(url)}; no PostgreSQL to start")
    elif left_behind := Postgres(datadir=datadir, port=parsed.port or 5432).running_pid():
        # Our server outlived a wrapper that was killed: serve it again, stop it with us.
        say(f"taking over our PostgreSQL (pid {left_behind}) that still runs on {datadir}")
        return _foreground(psutil.Process(left_behind), stop_signal=POSTGRES_FAST_SHUTDOWN)
    elif postgres_answers(url):
        say(f"using the PostgreSQL that answers at {_shown(url)}")
    else:
        server = Postgres(datadir=datadir, port=parsed.port or 5432)
        process = server.spawn()
        server.wait_ready(process)
        server.database_ensure(parsed.path.lstrip("/"))
        say(f"started our own PostgreSQL (pid {process.pid}) at {url}, data in {datadir}")
        return _foreground(psutil.Process(process.pid), stop_signal=POSTGRES_FAST_SHUTDOWN)
    return _idle()


def redis_serve(*, url: str, workdir: Path) -> int:
    if not url.startswith("redis://"):
        say(f"broker is {url}; no Redis to start")
    elif redis_answers(url):
        say(f"using the Redis that answers at {url}")
    else:
        port = urlparse(url).port or 6379
        process = redis_start(port=port, workdir=workdir)
        say(f"started our own redis-server (pid {process.pid}) on port {port}")
        return _foreground(psutil.Process(process.pid), stop_signal=signal.SIGTERM)
    return _idle()


def _idle() -> int:
    """Nothing of ours to run: stay up, so a supervisor does not restart us in a loop."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


def _foreground(process: psutil.Process, *, stop_signal: int) -> int:
    """Wait for a server process (our child or not); SIGTERM or SIGINT to us is passed
    on as stop_signal. The handler only signals: waiting in it would deadlock."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: process.send_signal(stop_signal))
    return process.wait() or 0


def _shown(url: str) -> str:
    parsed = urlparse(url)
    return url.replace(f":{parsed.password}@", ":***@") if parsed.password else url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="service", required=True)
    run_parser = commands.add_parser("run")
    run_parser.add_argument("--browser", action="store_true", help="ensure Chromium first")
    run_parser.add_argument("command", nargs=argparse.REMAINDER)
    pg_parser = commands.add_parser("postgres")
    pg_parser.add_argument("--url", default=os.environ.get("DATABASE_URL", DEMO_DATABASE_URL))
    pg_parser.add_argument("--dir", type=Path, default=VAR / "postgres")
    redis_parser = commands.add_parser("redis")
    redis_parser.add_argument(
        "--url", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    )
    redis_parser.add_argument("--dir", type=Path, default=VAR / "redis")
    options = parser.parse_args()
    if options.service == "run":
        command = options.command[1:] if options.command[:1] == ["--"] else options.command
        if not command:
            parser.error("run needs a command after --")
        sys.exit(run(command, browser=options.browser))
    if options.service == "postgres":
        sys.exit(postgres_serve(url=options.url, datadir=options.dir))
    sys.exit(redis_serve(url=options.url, workdir=options.dir))


if __name__ == "__main__":
    main()
