"""Abuse limits: how often one client address, email or recipient may do one thing.

Counted in Redis through Django's cache framework (CACHES["limits"], Django's own
RedisCache on SHOPFLOW_REDIS_URL), so every web process and worker shares one count and
a count costs no database query. Not django-ratelimit: its decorator keys on the request
alone, but the per-email limit needs the checkout's parsed body and the outbox's
per-recipient limit has no request at all; its block answers 403 without Retry-After; and
what it adds over cache.add + cache.incr (each one atomic Redis command) is the decorator.

Fixed windows: a count's key names its window, so the time left in the window is the
Retry-After, with no TTL to read back. settings.RATE_LIMITS holds each scope's
"count/seconds"; RATE_LIMITS_ENABLED turns every limit off (the test suite does; the
tests of the limits turn it on again).
"""

import hashlib
import ipaddress
import logging
import math
import time

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest

logger = logging.getLogger(__name__)


class RateLimited(Exception):
    """A scope's limit is used up for this key until the window ends."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(f"{scope}: try again in {retry_after} s")
        self.scope = scope
        self.retry_after = retry_after


def rate_parse(rate: str) -> tuple[int, int]:
    """Parse a rate: "30/600" is 30 uses per 600 seconds."""
    count, _, seconds = rate.partition("/")
    return int(count), int(seconds)


def limit_hit(*, scope: str, key: str) -> None:
    """Count one use of `scope` by `key`; raise RateLimited once past its limit.

    A scope without a limit is not counted. Redis unreachable lets the use through
    (logged): the limiter must not take checkout down with it."""
    if not settings.RATE_LIMITS_ENABLED or scope not in settings.RATE_LIMITS:
        return
    count, window_s = rate_parse(settings.RATE_LIMITS[scope])
    now = time.time()
    window = int(now // window_s)
    # Hashed: an email or address is not written to Redis as it is, and any length fits.
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    cache_key = f"{scope}:{digest}:{window}"
    cache = caches["limits"]
    try:
        cache.add(cache_key, 0, timeout=window_s + 1)
        try:
            used = cache.incr(cache_key)
        except ValueError:  # expired between add and incr: this is its first use
            cache.add(cache_key, 1, timeout=window_s + 1)
            used = 1
    except Exception:
        logger.exception("rate limit not counted: its Redis is unreachable", extra={"scope": scope})
        return
    if used > count:
        raise RateLimited(scope, retry_after=max(1, math.ceil((window + 1) * window_s - now)))


def client_address(request: HttpRequest) -> str:
    """The client's address, as one limit key: behind RATE_LIMIT_PROXIES trusted proxies,
    the address the nearest of them saw; an IPv6 client by its /64, which one subscriber
    usually holds whole."""
    address = request.META.get("REMOTE_ADDR", "")
    proxies = settings.RATE_LIMIT_PROXIES
    if proxies:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if len(hops) >= proxies:
            address = hops[-proxies]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
