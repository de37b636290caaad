"""The Redis client for state every worker process shares (breakers, leases, counters)."""

import os

import redis
from django.conf import settings

_clients: dict[tuple[int, str], redis.Redis] = {}


def shared_redis() -> redis.Redis:
    """This process's client for state all workers share (a fresh pool after fork)."""
    key = (os.getpid(), settings.SHOPFLOW_REDIS_URL)
    if key not in _clients:
        _clients[key] = redis.Redis.from_url(key[1], socket_timeout=2, socket_connect_timeout=2)
    return _clients[key]
