"""A circuit breaker per partner, its state in Redis so every worker process shares it.

Closed: calls go through; failures within a window are counted. At the threshold it
opens: for the cool-down, steps for that partner are deferred instead of calling.
After the cool-down calls go through again (half-open): a success closes it, the
first failure opens it again.
"""

import logging
from dataclasses import dataclass

import redis
from django.conf import settings
from django.dispatch import Signal

from engine.pipeline import pipeline
from kit.redis import shared_redis

logger = logging.getLogger(__name__)
PREFIX = "shopflow:breaker"

# Sent with partner= by the call whose failure opened a partner's breaker (once per
# opening): operations alert on it.
breaker_opened = Signal()


def _keys(partner: str) -> tuple[str, str]:
    return f"{PREFIX}:{partner}:failures", f"{PREFIX}:{partner}:open_until"


def breaker_wait(partner: str) -> float:
    """Seconds until calls to the partner are allowed again; 0 when they are now."""
    _, open_key = _keys(partner)
    try:
        remaining_ms = shared_redis().pttl(open_key)  # negative when the key is absent
    except redis.RedisError:
        # The breaker is advice: without its state, call the partner (fail open).
        logger.warning("breaker state unreadable for %s; calling it", partner)
        return 0.0
    return max(0.0, remaining_ms / 1000)


def breaker_record(partner: str, *, ok: bool) -> bool:
    """Count a call's outcome; return True when this failure opened the breaker (then
    breaker_opened is sent)."""
    try:
        opened = _breaker_count(partner, ok=ok)
    except redis.RedisError:
        logger.warning("breaker state unwritable for %s; outcome not counted", partner)
        return False
    if opened:
        breaker_opened.send(sender=breaker_record, partner=partner)
    return opened


def _breaker_count(partner: str, *, ok: bool) -> bool:
    failures_key, open_key = _keys(partner)
    client = shared_redis()
    if ok:
        client.delete(failures_key)
        return False
    with client.pipeline() as pipe:
        pipe.incr(failures_key)
        pipe.expire(failures_key, settings.BREAKER_WINDOW_S)
        failures, _ = pipe.execute()
    if failures < settings.BREAKER_FAILURE_THRESHOLD:
        return False
    # One below the threshold: in half-open state a single failure opens it again.
    client.set(failures_key, settings.BREAKER_FAILURE_THRESHOLD - 1, ex=settings.BREAKER_WINDOW_S)
    # The key lives exactly as long as the breaker is open. NX: when many workers
    # fail together, one of them opens it (and raises the alert).
    cooldown_ms = int(settings.BREAKER_COOLDOWN_S * 1000)
    return bool(client.set(open_key, 1, px=cooldown_ms, nx=True))


@dataclass(frozen=True)
class BreakerState:
    partner: str
    state: str  # closed, open
    failures: int
    wait_s: float


def breaker_states(partners: tuple[str, ...] | None = None) -> list[BreakerState]:
    """The state of each partner's breaker (by default the partners the pipeline calls)."""
    client = shared_redis()
    states = []
    for partner in pipeline().partners if partners is None else partners:
        failures_key, _ = _keys(partner)
        wait = breaker_wait(partner)
        states.append(
            BreakerState(
                partner=partner,
                state="open" if wait else "closed",
                failures=int(client.get(failures_key) or 0),
                wait_s=round(wait, 1),
            )
        )
    return states
