"""A deep backlog of real bulk-queue messages, for the priority-isolation test and
bench/priority.py.

The task is loaded only into test and benchmark workers (celery worker --include
harness.bulk). Each run counts itself under the name of the worker that ran it, so a
test can show which workers took bulk work.
"""

import time
import uuid

import redis
from celery import shared_task
from kombu.utils.json import dumps

from config.celery import app
from config.queues import BULK
from kit.redis import shared_redis

RUNS_KEY = "shopflow:bulk_job_runs"


@shared_task(bind=True, name="harness.bulk_job")
def bulk_job(self, ms: int) -> None:
    """Stand in for one batch of bulk work: `ms` of CPU, as an import batch spends.

    Idempotent: its only effect is a count of the deliveries each worker ran.
    """
    shared_redis().hincrby(RUNS_KEY, self.request.hostname, 1)
    deadline = time.process_time() + ms / 1000
    while time.process_time() < deadline:
        pass


def bulk_backlog_publish(*, broker_url: str, count: int, ms: int) -> None:
    """Push `count` bulk jobs onto the bulk queue of a Redis broker in a few seconds.

    Celery's apply_async costs about a millisecond of CPU per message here (building
    the message, the sent event, a round trip), so 100,000 would take minutes even on
    one connection. Instead one job goes through the real apply_async, kombu's final
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
        bulk_job.apply_async(args=(ms,), queue=BULK, connection=connection)
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


def bulk_runs_by_worker(*, redis_url: str) -> dict[str, int]:
    """How many bulk jobs each worker (by its node name) has run."""
    runs = redis.Redis.from_url(redis_url).hgetall(RUNS_KEY)
    return {name.decode(): int(count) for name, count in runs.items()}
