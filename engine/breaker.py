"""A circuit breaker per partner, its state in Redis so every worker process shares it.

Closed: calls go through; failures within a window are counted. At the threshold it
opens: for the cool-down, steps for that partner are deferred instead of calling.
When the cool-down ends it probes (half-open): exactly one caller, the one that takes
the probe token (SET NX, for at most BREAKER_PROBE_S), calls the partner; every other
step stays deferred until the probe answers. The probe's success closes the breaker for
everyone; its failure opens it again for another cool-down. A probe that never answers
(its worker died) is replaced once its token expires.

    closed --threshold failures--> open --cool-down ends--> probing --success--> closed
                                     ^------------------------- failure <--'
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
# How long a partner stays "tripped" (probing after its cool-down) with no call at all;
# past it the breaker forgets and starts closed.
TRIPPED_TTL_S = 24 * 3600

# Sent with partner= by the call whose failure opened a partner's breaker (once per
# incident, not on each failed probe): operations alert on it.
breaker_opened = Signal()


@dataclass(frozen=True)
class _Keys:
    failures: str  # failures counted in the current window
    open_until: str  # exists (with its TTL) while the breaker is open
    tripped: str  # exists from opening until a success: after the cool-down, probe
    probe: str  # the probe token, held by the one caller that probes
    probes: str  # probes sent since the breaker opened


def _keys(partner: str) -> _Keys:
    base = f"{PREFIX}:{partner}"
    return _Keys(
        f"{base}:failures",
        f"{base}:open_until",
        f"{base}:tripped",
        f"{base}:probe",
        f"{base}:probes",
    )


def breaker_wait(partner: str) -> float:
    """Seconds until this caller may call the partner; 0 when it may now. After the
    cool-down the first caller to ask gets 0 and is the probe; the rest wait for it."""
    keys = _keys(partner)
    try:
        client = shared_redis()
        with client.pipeline(transaction=False) as pipe:
            pipe.pttl(keys.open_until)  # negative when the key is absent
            pipe.exists(keys.tripped)
            open_ms, tripped = pipe.execute()
        if open_ms > 0:
            return open_ms / 1000
        if not tripped:
            return 0.0  # closed
        probe_ms = int(settings.BREAKER_PROBE_S * 1000)
        if client.set(keys.probe, 1, px=probe_ms, nx=True):
            client.incr(keys.probes)
            logger.warning("breaker for %s: cool-down over, this call probes", partner)
            return 0.0
        return max(client.pttl(keys.probe), 1) / 1000
    except redis.RedisError:
        # The breaker is advice: without its state, call the partner (fail open).
        logger.warning("breaker state unreadable for %s; calling it", partner)
        return 0.0


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
    keys = _keys(partner)
    client = shared_redis()
    if ok:
        # Any answer means the partner is up: closed for everyone.
        client.delete(keys.failures, keys.tripped, keys.probe, keys.probes)
        return False
    cooldown_ms = int(settings.BREAKER_COOLDOWN_S * 1000)
    if client.exists(keys.tripped):
        # The probe (or a call that went around the breaker) failed: open again, the
        # same incident, no second alert.
        client.set(keys.open_until, 1, px=cooldown_ms)
        client.delete(keys.probe)
        return False
    with client.pipeline() as pipe:
        pipe.incr(keys.failures)
        pipe.expire(keys.failures, settings.BREAKER_WINDOW_S)
        failures, _ = pipe.execute()
    if failures < settings.BREAKER_FAILURE_THRESHOLD:
        return False
    # NX: when many workers fail together, one of them opens it (and raises the alert).
    opened = bool(client.set(keys.tripped, 1, ex=TRIPPED_TTL_S, nx=True))
    if opened:
        client.set(keys.open_until, 1, px=cooldown_ms)
        client.delete(keys.failures, keys.probe, keys.probes)
    return opened


@dataclass(frozen=True)
class BreakerState:
    partner: str
    state: str  # closed, open, probing
    failures: int
    wait_s: float  # until the cool-down ends (open), or the probe's token expires
    probes: int  # probes sent since it opened

    @property
    def tripped(self) -> bool:
        """Open or probing: calls are held back."""
        return self.state != "closed"


def breaker_states(partners: tuple[str, ...] | None = None) -> list[BreakerState]:
    """The state of each partner's breaker (by default the partners the pipeline calls)."""
    client = shared_redis()
    states = []
    for partner in pipeline().partners if partners is None else partners:
        keys = _keys(partner)
        with client.pipeline(transaction=False) as pipe:
            pipe.pttl(keys.open_until)
            pipe.exists(keys.tripped)
            pipe.pttl(keys.probe)
            pipe.get(keys.failures)
            pipe.get(keys.probes)
            open_ms, tripped, probe_ms, failures, probes = pipe.execute()
        state = "open" if open_ms > 0 else "probing" if tripped else "closed"
        wait_ms = open_ms if state == "open" else probe_ms if state == "probing" else 0
        states.append(
            BreakerState(
                partner=partner,
                state=state,
                failures=int(failures or 0),
                wait_s=round(max(wait_ms, 0) / 1000, 1),
                probes=int(probes or 0),
            )
        )
    return states
