"""A circuit breaker per partner, its state in Redis so every worker process shares it.

Closed: calls go through; failures within a window are counted. At the threshold it
opens: for the cool-down, steps for that partner are deferred instead of calling.
When the cool-down ends it probes (half-open): exactly one caller, the one that takes
the probe token (SET NX, for at most BREAKER_PROBE_S), calls the partner; every other
step stays deferred until the probe answers. The probe's success closes the breaker for
everyone; its failure opens it again for another cool-down. A probe that never answers
(its worker died) is replaced once its token expires.

A failed probe is the breaker's, not the step's that carried it (engine/runner.py): while
the breaker holds a partner its steps wait for it without spending attempts or budget,
whoever happened to probe; ops hear of the outage from breaker_opened's alert. A success
that closes a tripped breaker sends breaker_closed: the steps it deferred are published at
once (engine/dispatch.py steps_deferred_wake), not when their deferral would have ended.

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
# Sent with partner= by the call whose success closed a tripped breaker (once).
breaker_closed = Signal()


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


@dataclass(frozen=True)
class Admission:
    wait_s: float  # until this caller may call the partner; 0: now
    probe: bool = False  # this caller holds the probe token: its call tests the partner


def breaker_admit(partner: str) -> Admission:
    """Whether this caller may call the partner now, or how long it must wait. After the
    cool-down the first caller to ask is admitted as the probe; the rest wait for it."""
    keys = _keys(partner)
    try:
        client = shared_redis()
        with client.pipeline(transaction=False) as pipe:
            pipe.pttl(keys.open_until)  # negative when the key is absent
            pipe.exists(keys.tripped)
            open_ms, tripped = pipe.execute()
        if open_ms > 0:
            return Admission(open_ms / 1000)
        if not tripped:
            return Admission(0.0)  # closed
        probe_ms = int(settings.BREAKER_PROBE_S * 1000)
        if client.set(keys.probe, 1, px=probe_ms, nx=True):
            client.incr(keys.probes)
            logger.warning("breaker for %s: cool-down over, this call probes", partner)
            return Admission(0.0, probe=True)
        return Admission(max(client.pttl(keys.probe), 1) / 1000)
    except redis.RedisError:
        # The breaker is advice: without its state, call the partner (fail open).
        logger.warning("breaker state unreadable for %s; calling it", partner)
        return Admission(0.0)


def breaker_record(partner: str, *, ok: bool) -> bool:
    """Count a call's outcome; return True when this failure opened the breaker (then
    breaker_opened is sent). A success that closed a tripped breaker sends breaker_closed."""
    try:
        changed = _breaker_close(partner) if ok else _breaker_count(partner)
    except redis.RedisError:
        logger.warning("breaker state unwritable for %s; outcome not counted", partner)
        return False
    if changed and ok:
        breaker_closed.send(sender=breaker_record, partner=partner)
    elif changed:
        breaker_opened.send(sender=breaker_record, partner=partner)
    return changed and not ok


def _breaker_close(partner: str) -> bool:
    """Any answer means the partner is up: closed for everyone. True when it was tripped
    (one caller sees that: the deletes are one transaction)."""
    keys = _keys(partner)
    with shared_redis().pipeline() as pipe:
        pipe.delete(keys.tripped)
        pipe.delete(keys.failures, keys.probe, keys.probes)
        tripped, _ = pipe.execute()
    return bool(tripped)


def _breaker_count(partner: str) -> bool:
    keys = _keys(partner)
    client = shared_redis()
    cooldown_ms = int(settings.BREAKER_COOLDOWN_S * 1000)
    if client.exists(keys.tripped):
        # The probe (or a call that went around the breaker) failed: open again, the
        # same incident, no second alert. The probe token is held for the new cool-down,
        # not freed: a caller that read "cool-down over" just before this would take a
        # freed token and probe twice in one cool-down (the outage drill saw it).
        with client.pipeline() as pipe:
            pipe.set(keys.open_until, 1, px=cooldown_ms)
            pipe.set(keys.probe, 1, px=cooldown_ms)
            pipe.execute()
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
