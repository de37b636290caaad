"""The watchdog for workers that live but no longer consume.

Celery workers on Redis are known to reconnect after a dropped connection and then take
nothing more from their queues while everything else about them runs: they answer
pings, send heartbeats and keep their threads (celery/celery#7276, #8030, #8091, and
#10205 on 5.5). Nothing of the worker's own says so, so each worker says what it does:

- its consumer notes, in memory, when it last took a message of each queue (received,
  or dropped as expired or revoked): a dict write in the event loop, no I/O there;
- a beacon thread in the worker's main process writes, every CONSUMER_BEACON_S, what
  the worker was started to consume, how many of its pool's slots are busy, since when
  it has had a free one, and how long ago it last took from each queue, to a Redis key
  that expires after three beacons, stamped with Redis's clock.

A queue is stalled when messages have waited on it for CONSUMER_STALL_S (first seen by
a check, remembered in Redis) and a live worker started for it has had a free slot and
taken nothing from it for as long: a healthy worker with a free slot takes a waiting
message at once. A worker whose slots are all busy (a long bulk job, hung partner
calls) is not stalled: that is the queue's promise (its oldest step's wait) to tell.
"""

import json
import logging
import threading
import time
from dataclasses import dataclass

from celery.worker import state as worker_state
from django.conf import settings

from config.queues import QUEUE_NAMES
from kit.redis import shared_redis

logger = logging.getLogger(__name__)

BEACON_KEY = "shopflow:consumer:"
WAITING_KEY = "shopflow:queue_waiting_since:"

_taken: dict[str, float] = {}  # queue -> time.monotonic() of this worker's last take
_started: dict[str, threading.Thread] = {}


def consumer_took(*, routing_key: str | None) -> None:
    """Note that this worker took a message of the queue (routing key = queue name)."""
    if routing_key in QUEUE_NAMES:
        _taken[routing_key] = time.monotonic()


def beacon_start(*, node: str, queues: list[str], concurrency: int) -> None:
    """Start the worker's beacon thread, once per worker."""
    if node in _started:
        return
    started = time.monotonic()
    thread = threading.Thread(
        target=_beacon_loop,
        args=(node, sorted(q for q in queues if q in QUEUE_NAMES), concurrency, started),
        name="consumer-beacon",
        daemon=True,
    )
    _started[node] = thread
    thread.start()


def _beacon_loop(node: str, queues: list[str], concurrency: int, started: float) -> None:
    free_since: float | None = None
    while True:
        now = time.monotonic()
        busy = len(worker_state.active_requests)
        if busy >= concurrency:
            free_since = None
        elif free_since is None:
            free_since = now
        try:
            beacon_write(
                node=node,
                queues=queues,
                concurrency=concurrency,
                busy=busy,
                free_for_s=None if free_since is None else now - free_since,
                taken_ago_s={q: now - _taken.get(q, started) for q in queues},
            )
        except Exception:
            logger.exception("consumer beacon not written; the next one tries again")
        time.sleep(settings.CONSUMER_BEACON_S)


def _redis_now() -> float:
    seconds, micros = shared_redis().time()
    return seconds + micros / 1e6


def beacon_write(
    *,
    node: str,
    queues: list[str],
    concurrency: int,
    busy: int,
    free_for_s: float | None,
    taken_ago_s: dict[str, float],
) -> None:
    beacon = {
        "node": node,
        "queues": queues,
        "concurrency": concurrency,
        "busy": busy,
        "free_for_s": free_for_s,
        "taken_ago_s": taken_ago_s,
        "at": _redis_now(),
    }
    ttl_ms = int(3 * settings.CONSUMER_BEACON_S * 1000)
    shared_redis().set(f"{BEACON_KEY}{node}", json.dumps(beacon), px=ttl_ms)


@dataclass(frozen=True)
class Consumer:
    """A live worker's beacon, its ages brought up to now."""

    node: str
    queues: tuple[str, ...]
    concurrency: int
    busy: int
    free_for_s: float | None  # how long it has had a free slot; None: every slot busy
    taken_ago_s: dict[str, float]


def consumers_live() -> list[Consumer]:
    """Every worker whose beacon has not expired, by node name."""
    client = shared_redis()
    now = _redis_now()
    keys = sorted(client.scan_iter(f"{BEACON_KEY}*"))
    found = []
    for raw in client.mget(keys) if keys else []:
        if raw is None:
            continue  # expired since the scan
        beacon = json.loads(raw)
        since = max(0.0, now - beacon["at"])
        found.append(
            Consumer(
                node=beacon["node"],
                queues=tuple(beacon["queues"]),
                concurrency=beacon["concurrency"],
                busy=beacon["busy"],
                free_for_s=None if beacon["free_for_s"] is None else beacon["free_for_s"] + since,
                taken_ago_s={q: ago + since for q, ago in beacon["taken_ago_s"].items()},
            )
        )
    return found


@dataclass(frozen=True)
class Consumption:
    queue: str
    waiting_for_s: float  # since a check first saw messages on it; 0 when empty
    taken_ago_s: float | None  # the last take by any live worker; None: no live worker
    stalled: tuple[Consumer, ...]  # live workers with a free slot that take nothing


def queues_consumption(depths: dict[str, int]) -> list[Consumption]:
    """For each queue of `depths` (messages waiting, by queue), how its live workers take
    from it and which of them have stalled. Remembers in Redis when messages were first
    seen waiting on a queue, and forgets it when the queue is seen empty."""
    client = shared_redis()
    now = _redis_now()
    consumers = consumers_live()
    stall_s = settings.CONSUMER_STALL_S
    found = []
    for queue, depth in depths.items():
        key = f"{WAITING_KEY}{queue}"
        if depth:
            client.set(key, now, nx=True)
            waiting_for_s = max(0.0, now - float(client.get(key) or now))
        else:
            client.delete(key)
            waiting_for_s = 0.0
        mine = [c for c in consumers if queue in c.queues]
        stalled = tuple(
            c
            for c in mine
            if waiting_for_s >= stall_s
            and c.free_for_s is not None
            and c.free_for_s >= stall_s
            and c.taken_ago_s[queue] >= stall_s
        )
        found.append(
            Consumption(
                queue=queue,
                waiting_for_s=waiting_for_s,
                taken_ago_s=min((c.taken_ago_s[queue] for c in mine), default=None),
                stalled=stalled,
            )
        )
    return found
