"""Deep backlogs of real queue messages, and tasks that stand in for work, for the
priority-isolation and control-queue tests and bench/priority.py.

The tasks are loaded only into test and benchmark workers (celery worker --include
harness.backlog). A bulk job counts itself under the name of the worker that ran it, so
a test can show which workers took bulk work; a hold keeps its pool slot as a hung
partner call would, until the test releases it.
"""

import time
import uuid

import redis
from celery import Signature, shared_task
from kombu.utils.json import dumps

from config.celery import app
from config.queues import BULK
from harness.processes import wait_for
from kit.redis import shared_redis

RUNS_KEY = "shopflow:bulk_job_runs"
HELD_KEY = "shopflow:holds_running"
RELEASE_KEY = "shopflow:holds_release"


@shared_task(bind=True, name="harness.bulk_job")
def bulk_job(self, ms: int) -> None:
    """Stand in for one batch of bulk work: `ms` of CPU, as an import batch spends.

    Idempotent: its only effect is a count of the deliveries each worker ran.
    """
    shared_redis().hincrby(RUNS_KEY, self.request.hostname, 1)
    deadline = time.process_time() + ms / 1000
    while time.process_time() < deadline:
        pass


@shared_task(name="harness.hold")
def hold(seconds: float) -> None:
    """Hold this pool slot (a thread or a process) for `seconds`, or until holds_release:
    a step whose partner call hangs.

    Idempotent: its only effect is a count of the holds that started.
    """
    client = shared_redis()
    client.incr(HELD_KEY)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not client.exists(RELEASE_KEY):
        time.sleep(0.1)


def holds_running(*, redis_url: str) -> int:
    """How many holds have started."""
    return int(redis.Redis.from_url(redis_url).get(HELD_KEY) or 0)


def holds_release(*, redis_url: str) -> None:
    """Let every hold, running or still to start, return at once."""
    redis.Redis.from_url(redis_url).set(RELEASE_KEY, 1)


def slots_hang(*, broker_url: str, queue: str, slots: int, waiting: int) -> None:
    """Hang every one of a queue's `slots` pool slots on a hold (an hour, or until
    holds_release) with `waiting` more holds behind them, and wait until all hang."""
    signature = hold.si(3600).set(queue=queue)
    backlog_publish(broker_url=broker_url, signature=signature, count=slots + waiting)
    wait_for(
        lambda: holds_running(redis_url=broker_url) == slots,
        timeout=30,
        what=f"every {queue} slot hung",
    )


def backlog_publish(*, broker_url: str, signature: Signature, count: int) -> None:
    """Push `count` copies of the signature (a queue named in it) onto a Redis broker in
    a few seconds.

    Celery's apply_async costs about a millisecond of CPU per message here (building
    the message, the sent event, a round trip), so 100,000 would take minutes even on
    one connection. Instead one message goes through the real apply_async, kombu's final
    write of it is caught (the exact JSON it would LPUSH), and copies of it with fresh
    task ids and delivery tags are pushed a thousand to an LPUSH: the messages are
    byte for byte what Celery sends, minus the per-task sent events.
    """
    with app.connection_for_write(broker_url) as connection:
        channel = connection.default_channel
        pushed: list[tuple[str, dict]] = []
        # Only this connection's channel, which nothing else uses, is diverted. A backlog
        # for a test, outside any transaction: nothing to publish after.
        channel._put = lambda queue, message, **kwargs: pushed.append((queue, message))
        signature.apply_async(connection=connection)
        [(queue, message)] = pushed
        if message["properties"].get("priority"):
            raise ValueError("a prioritised message lives under another Redis key")
        task_id = message["headers"]["id"]
        tag = message["properties"]["delivery_tag"]
        template = dumps(message)  # kombu's own encoder, as in its _put
        client = channel.client
        for start in range(0, count, 1000):
            payloads = [
                template.replace(task_id, str(uuid.uuid4())).replace(tag, str(uuid.uuid4()))
                for _ in range(min(1000, count - start))
            ]
            client.lpush(queue, *payloads)


def bulk_backlog_publish(*, broker_url: str, count: int, ms: int) -> None:
    """Push `count` bulk jobs of `ms` CPU each onto the bulk queue (backlog_publish)."""
    backlog_publish(broker_url=broker_url, signature=bulk_job.si(ms).set(queue=BULK), count=count)


def bulk_runs_by_worker(*, redis_url: str) -> dict[str, int]:
    """How many bulk jobs each worker (by its node name) has run."""
    runs = redis.Redis.from_url(redis_url).hgetall(RUNS_KEY)
    return {name.decode(): int(count) for name, count in runs.items()}
