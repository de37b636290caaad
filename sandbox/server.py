"""Sandbox partners: one stdlib HTTP service playing payment gateway, ERP, carrier and analytics.

Every effectful POST is idempotent per partner and `Idempotency-Key`, and every effect lands in
a ledger (GET /ledger), so tests, benchmarks and the demo can prove "charged once" even under
injected latency, failures and lost responses. No Django here: it runs in a test thread or alone.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import random
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from sandbox.webhooks import (
    WEBHOOK_PARTNERS,
    WebhookSender,
    event_body,
    send_once,
    tracking_events,
)

PARTNERS = ("payment", "erp", "carrier", "analytics")
FIRST_ERP_NUMBER = 10000001

Reply = tuple[int, dict[str, Any]]
# What handle returns for an answer that is lost: the connection is closed without one.
LOST = None
T = TypeVar("T")


class RequestError(Exception):
    """Abort a request with a JSON error answer that is never stored under the key."""

    def __init__(self, status: int, error: str, message: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.body: dict[str, Any] = {"error": error}
        if message is not None:
            self.body["message"] = message


# --- configuration -------------------------------------------------------------------------


def _latency_range(value: Any) -> tuple[int, int]:
    """Return a validated (min, max) latency in milliseconds."""
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(_is_a(v, int) for v in value)
        or not 0 <= value[0] <= value[1]
    ):
        raise ValueError("latency_ms must be [min, max] integers with 0 <= min <= max")
    return value[0], value[1]


def _rate(value: Any) -> float:
    """Return a validated probability."""
    if not _is_a(value, int | float) or not 0 <= value <= 1:
        raise ValueError("rates must be numbers between 0 and 1")
    return float(value)


def _seconds(value: Any, name: str = "timeout_s") -> float:
    """Return a validated non-negative duration."""
    if not _is_a(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a non-negative number")
    return float(value)


def _offset(value: Any) -> float:
    """Return a validated clock offset in seconds (either sign, at most a day)."""
    if not _is_a(value, int | float) or abs(value) > 86400:
        raise ValueError("erp_clock_offset_s must be a number of seconds within a day")
    return float(value)


def _url(value: Any) -> str:
    """Return a validated http(s) base URL, or "" (webhooks off)."""
    if not isinstance(value, str) or (value and not value.startswith(("http://", "https://"))):
        raise ValueError("webhook_url must be an http(s) URL or empty")
    return value


def _webhook_secrets(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        k in WEBHOOK_PARTNERS and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("webhook_secrets must map payment/carrier to strings")
    return {**DEFAULT_WEBHOOK_SECRETS, **value}


# What a failing partner answers: "not now" (the partner did nothing) or a server error.
FAILURE_STATUSES = (408, 409, 425, 429, 500, 502, 503, 504)


def _failure_status(value: Any, name: str = "failure_status") -> int:
    if not _is_a(value, int) or value not in FAILURE_STATUSES:
        raise ValueError(f"{name} must be one of {', '.join(map(str, FAILURE_STATUSES))}")
    return value


def _retry_after(value: Any, name: str = "retry_after_s") -> int:
    if not _is_a(value, int) or not 0 <= value <= 3600:
        raise ValueError(f"{name} must be whole seconds from 0 (none) to 3600")
    return value


# How long a partner keeps what it answered under an idempotency key: Stripe keeps keys
# for 24 hours, then the same key is a new request that acts again.
DEFAULT_KEY_TTL_S = 86400.0


# Settings that map partners to a value (key_ttl_s={"erp": 0} leaves payment's as it was).
_PER_PARTNER = frozenset({"key_ttl_s"})


def _key_ttls(value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or not all(
        k in PARTNERS and _is_a(v, int | float) and v >= 0 for k, v in value.items()
    ):
        raise ValueError("key_ttl_s must map partners to non-negative seconds")
    return {**dict.fromkeys(PARTNERS, DEFAULT_KEY_TTL_S), **value}


def _failure(status: int, retry_after_s: int) -> Reply:
    """A failed call's answer; a Retry-After (also its header) with 429 and 503 only, as
    partners do."""
    body: dict[str, Any] = {"error": "unavailable"}
    if retry_after_s and status in (429, 503):
        body["retry_after_s"] = retry_after_s
    return status, body


@dataclass(frozen=True)
class Outage:
    """One partner answering `status` to every request (calls and look-ups) until `until`
    on this process's monotonic clock, and when each request came (seconds from its
    start): so a test can count the calls a breaker let through."""

    started: float
    until: float
    status: int = 503
    retry_after_s: int = 0
    calls_at_s: list[float] = field(default_factory=list)

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "remaining_s": round(max(0.0, self.until - now), 3),
            "status": self.status,
            "retry_after_s": self.retry_after_s,
            "calls_at_s": [round(at, 3) for at in self.calls_at_s],
        }


def _outages(value: Any) -> dict[str, Outage]:
    """Return validated outages: {partner: {"for_s", "status"?, "retry_after_s"?}}, each
    from now; they replace any earlier ones (so {} ends every outage)."""
    if not isinstance(value, dict):
        raise ValueError("outages must map partners to {for_s, status, retry_after_s}")
    now = time.monotonic()
    outages = {}
    for partner, script in value.items():
        name = f"outages.{partner}"
        if partner not in PARTNERS:
            raise ValueError(f"{name}: no such partner (one of {', '.join(PARTNERS)})")
        if not isinstance(script, dict) or "for_s" not in script:
            raise ValueError(f"{name} must be an object with for_s")
        unknown = sorted(set(script) - {"for_s", "status", "retry_after_s"})
        if unknown:
            raise ValueError(f"{name}: unknown fields: {', '.join(unknown)}")
        outages[partner] = Outage(
            started=now,
            until=now + _seconds(script["for_s"], f"{name}.for_s"),
            status=_failure_status(script.get("status", 503), f"{name}.status"),
            retry_after_s=_retry_after(script.get("retry_after_s", 0), f"{name}.retry_after_s"),
        )
    return outages


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("carrier_tracking must be true or false")
    return value


# The shop's development and test secrets (config/settings.py): the sandbox signs as the
# partners would with theirs.
DEFAULT_WEBHOOK_SECRETS = {name: f"dev-webhook-secret-{name}" for name in WEBHOOK_PARTNERS}


def _is_a(value: Any, kind: Any) -> bool:
    """Check a JSON value's type, never taking true/false for numbers (bool subclasses int)."""
    return isinstance(value, kind) and not isinstance(value, bool)


_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "latency_ms": _latency_range,
    "failure_rate": _rate,
    "timeout_rate": _rate,
    "timeout_s": _seconds,
    "failure_status": _failure_status,
    "retry_after_s": _retry_after,
    "erp_clock_offset_s": _offset,
    "webhook_url": _url,
    "webhook_delay_ms": _latency_range,
    "webhook_duplicate_rate": _rate,
    "webhook_reorder_rate": _rate,
    "webhook_bad_signature_rate": _rate,
    "webhook_secrets": _webhook_secrets,
    "carrier_tracking": _flag,
    "key_ttl_s": _key_ttls,
    "outages": _outages,
}
# Windows of lost answers, set as seconds from now and kept as a deadline on this
# process's monotonic clock: the effect is done, then the connection is dropped without
# an answer (answers_lost_s: effectful POSTs; lookups_lost_s: look-ups by key).
_WINDOWS = {"answers_lost_s": "answers_lost_until", "lookups_lost_s": "lookups_lost_until"}


@dataclass(frozen=True)
class Config:
    """Fault injection applied to partner POSTs."""

    latency_ms: tuple[int, int] = (0, 0)
    failure_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_s: float = 30.0
    # The answer of a failed call (failure_rate), and its Retry-After (0: none; sent
    # with 429 and 503 only, as partners do).
    failure_status: int = 503
    retry_after_s: int = 0
    # How far the ERP's clock is from ours: its acknowledgement and count times carry it.
    erp_clock_offset_s: float = 0.0
    answers_lost_until: float = 0.0
    lookups_lost_until: float = 0.0
    # Webhooks to the shop (sandbox/webhooks.py): where, how late, how often twice, out of
    # order or badly signed, signed with what; and whether each label is followed by the
    # carrier's scans up to "delivered".
    webhook_url: str = ""
    webhook_delay_ms: tuple[int, int] = (0, 0)
    webhook_duplicate_rate: float = 0.0
    webhook_reorder_rate: float = 0.0
    webhook_bad_signature_rate: float = 0.0
    webhook_secrets: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_WEBHOOK_SECRETS))
    carrier_tracking: bool = False
    # Per partner, seconds after its first use that a key's answer is forgotten.
    key_ttl_s: dict[str, float] = field(default_factory=lambda: _key_ttls({}))
    # Scripted outages of single partners (the others keep answering).
    outages: dict[str, Outage] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Config:
        """Read SANDBOX_LATENCY_MS ("0" or "100-500") and the SANDBOX_*_RATE/TIMEOUT_S vars."""
        bounds = [int(part) for part in environ.get("SANDBOX_LATENCY_MS", "0").split("-")]
        return cls(
            latency_ms=_latency_range(bounds * 2 if len(bounds) == 1 else bounds),
            failure_rate=_rate(float(environ.get("SANDBOX_FAILURE_RATE", "0"))),
            timeout_rate=_rate(float(environ.get("SANDBOX_TIMEOUT_RATE", "0"))),
            timeout_s=_seconds(float(environ.get("SANDBOX_TIMEOUT_S", "30"))),
            erp_clock_offset_s=_offset(float(environ.get("SANDBOX_ERP_CLOCK_OFFSET_S", "0"))),
            webhook_url=_url(environ.get("SANDBOX_WEBHOOK_URL", "")),
            webhook_secrets=_webhook_secrets(
                {
                    name: environ[f"SANDBOX_{name.upper()}_WEBHOOK_SECRET"]
                    for name in WEBHOOK_PARTNERS
                    if f"SANDBOX_{name.upper()}_WEBHOOK_SECRET" in environ
                }
            ),
            carrier_tracking=environ.get("SANDBOX_CARRIER_TRACKING", "0") == "1",
        )

    def updated(self, changes: dict[str, Any]) -> Config:
        """Return a copy with `changes` applied; raise RequestError(400) on any bad value."""
        unknown = sorted(set(changes) - set(_SETTINGS) - set(_WINDOWS))
        if unknown:
            raise RequestError(400, "invalid_request", f"unknown settings: {', '.join(unknown)}")
        now = time.monotonic()
        try:
            return replace(
                self,
                **{
                    _WINDOWS.get(name, name): (
                        now + _seconds(v, name)
                        if name in _WINDOWS
                        else _SETTINGS[name](self._merged(name, v))
                    )
                    for name, v in changes.items()
                },
            )
        except ValueError as exc:
            raise RequestError(400, "invalid_request", str(exc)) from exc

    def _merged(self, name: str, value: Any) -> Any:
        """A change of a per-partner map names only the partners it changes."""
        if name in _PER_PARTNER and isinstance(value, dict):
            return {**getattr(self, name), **value}
        return value

    def losing(self, window: str) -> bool:
        """Whether answers of this kind are being lost now."""
        return time.monotonic() < getattr(self, _WINDOWS[window])

    def as_json(self) -> dict[str, Any]:
        """Return the config as served by GET /control."""
        return {
            "latency_ms": list(self.latency_ms),
            "failure_rate": self.failure_rate,
            "timeout_rate": self.timeout_rate,
            "timeout_s": self.timeout_s,
            "failure_status": self.failure_status,
            "retry_after_s": self.retry_after_s,
            "erp_clock_offset_s": self.erp_clock_offset_s,
            **{
                name: round(max(0.0, getattr(self, until) - time.monotonic()), 3)
                for name, until in _WINDOWS.items()
            },
            "webhook_url": self.webhook_url,
            "webhook_delay_ms": list(self.webhook_delay_ms),
            "webhook_duplicate_rate": self.webhook_duplicate_rate,
            "webhook_reorder_rate": self.webhook_reorder_rate,
            "webhook_bad_signature_rate": self.webhook_bad_signature_rate,
            # Which secret is used shows by its start only.
            "webhook_secrets": {k: v[:4] + "..." for k, v in self.webhook_secrets.items()},
            "carrier_tracking": self.carrier_tracking,
            "key_ttl_s": self.key_ttl_s,
            "outages": {name: o.as_json(time.monotonic()) for name, o in self.outages.items()},
        }


# --- requests and ledger -------------------------------------------------------------------


@dataclass
class Request:
    """One routed HTTP request."""

    path: str
    params: dict[str, str]
    key_header: str | None
    raw: bytes
    query: dict[str, str] = field(default_factory=dict)
    # The order an effectful request acted for (set by Sandbox._effect).
    order: str = ""

    @property
    def partner(self) -> str:
        """Name the partner by the first path segment."""
        return self.path.split("/")[1]

    @property
    def idempotency_key(self) -> str:
        """Return the Idempotency-Key header, required on effectful POSTs."""
        if not self.key_header:
            raise RequestError(400, "missing_idempotency_key")
        return self.key_header

    @functools.cached_property
    def body(self) -> dict[str, Any]:
        """Parse the body as a JSON object; an empty body counts as {}."""
        try:
            parsed = json.loads(self.raw or b"{}")
        except ValueError as exc:
            raise RequestError(400, "invalid_json") from exc
        if not isinstance(parsed, dict):
            raise RequestError(400, "invalid_json", "body must be a JSON object")
        return parsed

    def fingerprint(self) -> str:
        """Identify what was asked, so a reused key with another request can be told apart."""
        canonical = json.dumps([self.path, self.body], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Effect:
    """One real-world side effect a partner performed."""

    kind: str
    key: str
    order: str
    at: str


@dataclass
class PartnerLedger:
    """What one partner saw and did."""

    calls: int = 0
    keys: set[str] = field(default_factory=set)
    effects: list[Effect] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Return the ledger entry as served by GET /ledger."""
        return {
            "calls": self.calls,
            "distinct_keys": len(self.keys),
            "effects": [asdict(effect) for effect in self.effects],
        }


@dataclass(frozen=True)
class StoredAnswer:
    """The first answer given under an idempotency key, and the kind of request it
    answered (its route's path), so a look-up of another kind does not find it."""

    fingerprint: str
    route: str
    status: int
    body: dict[str, Any]
    stored_at: float = field(default_factory=time.monotonic)


_TYPE_NAMES: dict[type, str] = {
    str: "a non-empty string",
    int: "an integer",
    list: "a list",
    dict: "an object",
}


def _field(body: dict[str, Any], name: str, kind: type[T]) -> T:
    """Return body[name] if it has the expected JSON type; raise invalid_request otherwise."""
    value = body.get(name)
    if not _is_a(value, kind) or value == "":
        raise RequestError(400, "invalid_request", f"{name} must be {_TYPE_NAMES[kind]}")
    return value


def _amount(body: dict[str, Any], name: str) -> int:
    """Return a positive amount in cents."""
    value = _field(body, name, int)
    if value <= 0:
        raise RequestError(400, "invalid_request", f"{name} must be a positive integer")
    return value


# --- the partners --------------------------------------------------------------------------


class Sandbox:
    """Hold the partners' state: config, ledger, idempotency store, domain records and locks."""

    def __init__(self, defaults: Config | None = None) -> None:
        self.defaults = defaults or Config.from_env()
        # Guards ledger, domain records and the lock table; never held while sleeping.
        self._lock = threading.Lock()
        self._random = random.Random()
        self.webhooks = WebhookSender(lambda: self.config, self._random)
        self._clear()

    def _clear(self) -> None:
        self.config = self.defaults
        self._ledger = {partner: PartnerLedger() for partner in PARTNERS}
        self._answers: dict[tuple[str, str], StoredAnswer] = {}
        # What each effectful route made, as answered, with its order: the partners' lists
        # and searches by order, which never forget as keys do.
        self._made: dict[str, list[dict[str, Any]]] = {}
        # Keys of requests received and not yet answered: a look-up says "in progress".
        self._in_flight: dict[tuple[str, str], int] = {}
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._captures: dict[str, str] = {}
        self._refunded: set[str] = set()
        # ERP references cancelled and tracking numbers voided: a second undo is refused.
        self._undone: set[str] = set()
        self._erp_orders: dict[str, str] = {}
        self._erp_lines: dict[str, dict[str, int]] = {}
        # The warehouse: units on hand per SKU; synced orders take units, cancels return them.
        self._stock: dict[str, int] = {}
        self._labels: dict[str, str] = {}
        self._erp_numbers = itertools.count(FIRST_ERP_NUMBER)
        self.webhooks.clear()

    def handle(
        self,
        method: str,
        path: str,
        key_header: str | None,
        raw: bytes,
        query: list[tuple[str, str]] | None = None,
    ) -> Reply | None:
        """Route one request and return (status, JSON body), or LOST for no answer."""
        down = self._outage_answer(path)
        if down:
            return down
        for route in ROUTES:
            match = route.pattern.fullmatch(path) if route.method == method else None
            if match:
                try:
                    request = Request(
                        path, match.groupdict(), key_header, raw, _query(route, query or [])
                    )
                    if route.effectful:
                        return self._run_effectful(request, route)
                    if route.lookup_of:
                        return self._lookup(request, route.lookup_of)
                    if route.list_of:
                        return self._list(request, route.list_of)
                    return route.action(self, request)
                except RequestError as exc:
                    return exc.status, exc.body
        return 404, {"error": "not_found"}

    # --- idempotent effectful POSTs ----------------------------------------------------------

    def _run_effectful(self, request: Request, route: Route) -> Reply | None:
        """Count the call, inject faults, and run the route's action at most once per key."""
        config = self.config
        slot = (request.partner, request.key_header or "")
        with self._lock:  # in flight from its arrival: a look-up meanwhile says so
            self._in_flight[slot] = self._in_flight.get(slot, 0) + 1
        self._count_call(request)
        try:
            time.sleep(self._random.uniform(*config.latency_ms) / 1000)
            if self._random.random() < config.failure_rate:
                return _failure(config.failure_status, config.retry_after_s)
            reply = self._once(request, route)
        finally:
            with self._lock:  # a reset meanwhile started a new table
                left = self._in_flight.pop(slot, 1) - 1
                if left:
                    self._in_flight[slot] = left
        if self.config.losing("answers_lost_s"):
            return LOST  # the effect is done and stored; the connection drops unanswered
        if self._random.random() < config.timeout_rate:
            # The effect is done and stored; only the answer is late, like a lost response.
            time.sleep(config.timeout_s)
        return reply

    def _outage_answer(self, path: str) -> Reply | None:
        """The failure a partner in a scripted outage answers to any request, counted."""
        outage = self.config.outages.get(path.split("/")[1])
        now = time.monotonic()
        if outage is None or now >= outage.until:
            return None
        with self._lock:
            outage.calls_at_s.append(now - outage.started)
        return _failure(outage.status, outage.retry_after_s)

    def _lookup(self, request: Request, route: Route) -> Reply | None:
        """What the request of `route`'s kind sent under a key got, as a partner's
        "retrieve by idempotency key" answers: 200 with the stored answer, 404 when
        nothing was done under it, 409 while a request under it is still in progress."""
        if self.config.losing("lookups_lost_s"):
            return LOST
        slot = (request.partner, request.params["key"])
        with self._lock:
            stored = self._answers.get(slot)
            in_flight = slot in self._in_flight
        if stored is not None and stored.route == route.path and self._kept(slot, stored):
            return 200, {"status": stored.status, "answer": stored.body}
        if in_flight:
            return 409, {"error": "in_progress"}
        return 404, {"error": "not_found"}

    def _kept(self, slot: tuple[str, str], stored: StoredAnswer) -> bool:
        """Whether the partner still keeps the answer stored under a key (key_ttl_s)."""
        return time.monotonic() - stored.stored_at < self.config.key_ttl_s[slot[0]]

    def _list(self, request: Request, route: Route) -> Reply:
        """What the effectful `route` made for an order (?order=, or for every order), as
        its calls were answered: a partner's list or search, kept past its keys."""
        name = route.path.rsplit("/", 1)[1]
        return 200, {name: self._made_for(route, request.query.get("order"))}

    def _made_for(self, route: Route, order: str | None) -> list[dict[str, Any]]:
        with self._lock:
            made = self._made.get(route.path, [])
            return [dict(record) for record in made if order in (None, record["order"])]

    def _made_mark(self, route: Route, id_field: str, record_id: str, *, status: str) -> None:
        """Mark what `route` made under record_id as since undone (listed with its status)."""
        with self._lock:
            for record in self._made.get(route.path, []):
                if record[id_field] == record_id:
                    record["status"] = status

    def _count_call(self, request: Request) -> None:
        with self._lock:
            ledger = self._ledger[request.partner]
            ledger.calls += 1
            if request.key_header:
                ledger.keys.add(request.key_header)

    def _once(self, request: Request, route: Route) -> Reply:
        """Return the stored answer for the key, running the action only for its first use."""
        slot = (request.partner, request.idempotency_key)
        fingerprint = request.fingerprint()
        # Same-key requests queue here, so a concurrent duplicate sees the first one's answer.
        with self._key_lock(slot):
            stored = self._answers.get(slot)
            if stored is None or not self._kept(slot, stored):
                stored = StoredAnswer(fingerprint, route.path, *route.action(self, request))
                self._answers[slot] = stored
                if request.order and stored.status < 300:
                    with self._lock:
                        made = self._made.setdefault(route.path, [])
                        made.append({**stored.body, "order": request.order})
        if stored.fingerprint != fingerprint:
            raise RequestError(422, "idempotency_key_reused")
        return stored.status, stored.body

    def _key_lock(self, slot: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(slot, threading.Lock())

    def _effect(self, request: Request, kind: str, order: str) -> None:
        """Record a side effect in the requesting partner's ledger."""
        effect = Effect(kind, request.idempotency_key, order, datetime.now(UTC).isoformat())
        request.order = order
        with self._lock:
            self._ledger[request.partner].effects.append(effect)

    def _register(self, records: dict[str, str], record_id: str, order: str) -> None:
        with self._lock:
            records[record_id] = order

    # --- partner actions ---------------------------------------------------------------------

    def capture(self, request: Request) -> Reply:
        """Capture a payment, or decline tokens starting with tok_decline."""
        body = request.body
        order = _field(body, "order", str)
        amount = _amount(body, "amount_cents")
        currency = _field(body, "currency", str)
        if _field(body, "payment_token", str).startswith("tok_decline"):
            return 402, {"error": "card_declined", "message": "The card was declined."}
        capture_id = f"cap_{secrets.token_hex(8)}"
        self._register(self._captures, capture_id, order)
        self._effect(request, "capture", order)
        return 201, {
            "capture_id": capture_id,
            "status": "captured",
            "amount_cents": amount,
            "currency": currency,
        }

    def refund(self, request: Request) -> Reply:
        """Refund (part of) an earlier capture."""
        capture_id = _field(request.body, "capture_id", str)
        amount = _amount(request.body, "amount_cents")
        captured_for = self._captures.get(capture_id)
        # The merchant's order it names (optional, as Stripe's metadata): listed under it.
        order = _field(request.body, "order", str) if "order" in request.body else captured_for
        if captured_for is None:
            return 404, {"error": "unknown_capture"}
        self._effect(request, "refund", order)
        with self._lock:
            self._refunded.add(capture_id)
        return 201, {
            "refund_id": f"re_{secrets.token_hex(8)}",
            "status": "refunded",
            "capture_id": capture_id,
            "amount_cents": amount,
        }

    def sync_order(self, request: Request) -> Reply:
        """Create the order in the ERP and hand out its sequential reference."""
        order = _field(request.body, "order", str)
        units = _units(_field(request.body, "lines", list))
        _field(request.body, "total_cents", int)
        with self._lock:
            reference = f"ERP-{next(self._erp_numbers)}"
            self._erp_lines[reference] = units
            self._stock_move(units, sign=-1)
        self._register(self._erp_orders, reference, order)
        self._effect(request, "order_sync", order)
        # When the ERP took it, on the ERP's clock: what its stock counts are measured by.
        return 201, {"erp_reference": reference, "acknowledged_at": self._erp_now().isoformat()}

    def cancel_order(self, request: Request) -> Reply:
        """Cancel an order the ERP knows."""
        reference = request.params["reference"]
        order = self._erp_orders.get(reference)
        if order is None:
            return 404, {"error": "unknown_erp_order"}
        if reference in self._undone:  # a second cancel, under a key it no longer keeps
            return 422, {"error": "already_cancelled", "message": f"{reference} is cancelled"}
        with self._lock:
            self._undone.add(reference)
            self._stock_move(self._erp_lines.pop(reference, {}), sign=+1)
        self._effect(request, "order_cancel", order)
        self._made_mark(ERP_SYNC, "erp_reference", reference, status="cancelled")
        return 200, {"erp_reference": reference, "status": "cancelled"}

    def _stock_move(self, units: dict[str, int], *, sign: int) -> None:
        """Take (-1) or return (+1) units of the SKUs the warehouse stocks; hold self._lock."""
        for sku, quantity in units.items():
            if sku in self._stock:
                self._stock[sku] = max(0, self._stock[sku] + sign * quantity)

    def stock_list(self, request: Request) -> Reply:
        """The warehouse feed: units on hand per SKU, and the moment they were counted."""
        with self._lock:
            items = [{"sku": sku, "on_hand": n} for sku, n in sorted(self._stock.items())]
            return 200, {"as_of": self._erp_now().isoformat(), "items": items}

    def _erp_now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.config.erp_clock_offset_s)

    def stock_set(self, request: Request) -> Reply:
        """Set units on hand for some SKUs: {"levels": {"SKU": units}} (a stock count)."""
        levels = _field(request.body, "levels", dict)
        if not all(isinstance(k, str) and _is_a(v, int) and v >= 0 for k, v in levels.items()):
            raise RequestError(400, "invalid_request", "levels must map SKUs to units >= 0")
        with self._lock:
            self._stock.update(levels)
        return self.stock_list(request)

    def create_label(self, request: Request) -> Reply:
        """Buy a shipping label for an ERP order."""
        order = _field(request.body, "order", str)
        _field(request.body, "erp_reference", str)
        _field(request.body, "address", dict)
        tracking = f"1Z{secrets.token_hex(6).upper()}"
        self._register(self._labels, tracking, order)
        self._effect(request, "label", order)
        if self.config.carrier_tracking:
            for event in tracking_events(order=order, tracking=tracking, delivered=True):
                self.webhooks.enqueue("carrier", event)
        zpl = f"^XA^FO50,50^ADN,36,20^FD{order}^FS^FO50,100^ADN,36,20^FD{tracking}^FS^XZ"
        return 201, {"tracking_number": tracking, "label_zpl": zpl}

    def void_label(self, request: Request) -> Reply:
        """Void a label the carrier issued."""
        tracking = request.params["tracking"]
        order = self._labels.get(tracking)
        if order is None:
            return 404, {"error": "unknown_label"}
        if tracking in self._undone:  # a second void, under a key it no longer keeps
            return 422, {"error": "already_voided", "message": f"{tracking} is voided"}
        with self._lock:
            self._undone.add(tracking)
        self._effect(request, "label_void", order)
        self._made_mark(LABEL, "tracking_number", tracking, status="voided")
        return 200, {"tracking_number": tracking, "status": "voided"}

    def track_event(self, request: Request) -> Reply:
        """Accept an analytics event; any extra fields ride along."""
        _field(request.body, "event", str)
        self._effect(request, "event", _field(request.body, "order", str))
        return 202, {"accepted": True}

    # --- webhooks to the shop ----------------------------------------------------------------

    def webhooks_enqueue(self, request: Request) -> Reply:
        """Queue events for delivery: {"events": [{partner, type, order, data?, occurred_at?,
        id?}]}; they go out with the configured delay, duplicates, reordering and bad
        signatures, and are delivered again until the shop answers 2xx."""
        events = _field(request.body, "events", list)
        bodies = []
        for n, event in enumerate(events):
            if not isinstance(event, dict) or event.get("partner") not in WEBHOOK_PARTNERS:
                raise RequestError(400, "invalid_request", f"events[{n}].partner is invalid")
            if not isinstance(event.get("type"), str) or not isinstance(event.get("order"), str):
                raise RequestError(400, "invalid_request", f"events[{n}] needs type and order")
            body = event_body(
                partner=event["partner"],
                kind=event["type"],
                order=event["order"],
                data=event.get("data") or {},
                occurred_at=event.get("occurred_at"),
            )
            body["id"] = event.get("id", body["id"])
            bodies.append((event["partner"], body))
        for partner, body in bodies:
            self.webhooks.enqueue(partner, body)
        return 202, {"ids": [body["id"] for _, body in bodies]}

    def webhooks_send(self, request: Request) -> Reply:
        """Send one request now, as POST /webhooks/send's body shapes it, and answer with
        the shop's answer (sandbox/webhooks.py send_once)."""
        try:
            status, answer = send_once(self.config, request.body)
        except (ValueError, TypeError) as exc:
            raise RequestError(400, "invalid_request", str(exc)) from exc
        return 200, {"status": status, "answer": answer}

    def webhooks_report(self, request: Request) -> Reply:
        """Every event queued since the last reset and each attempt to deliver it."""
        return 200, self.webhooks.report()

    # --- control plane -----------------------------------------------------------------------

    def list_captures(self, request: Request) -> Reply:
        """List every capture (of one order: ?order=) and whether it was refunded, as a
        gateway's report or search would."""
        made = self._made_for(CAPTURE, request.query.get("order"))
        with self._lock:
            captures = [
                {
                    "capture_id": capture["capture_id"],
                    "order": capture["order"],
                    "amount_cents": capture["amount_cents"],
                    "refunded": capture["capture_id"] in self._refunded,
                }
                for capture in made
            ]
        return 200, {"captures": captures}

    def healthz(self, request: Request) -> Reply:
        """Report liveness."""
        return 200, {"status": "ok"}

    def ledger(self, request: Request) -> Reply:
        """Report calls, distinct keys and effects for every partner."""
        with self._lock:
            return 200, {name: entry.as_json() for name, entry in self._ledger.items()}

    def get_control(self, request: Request) -> Reply:
        """Report the current fault injection config."""
        return 200, self.config.as_json()

    def set_control(self, request: Request) -> Reply:
        """Change any subset of the fault injection config."""
        with self._lock:
            self.config = self.config.updated(request.body)
        return 200, self.config.as_json()

    def reset(self, request: Request) -> Reply:
        """Forget all calls, effects, keys and records, and restore the default config."""
        with self._lock:
            self._clear()
        return 200, {"reset": True}


Action = Callable[[Sandbox, Request], Reply]


def _query(route: Route, pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The query parameters the route takes, each once and not blank; 400 naming any
    other (a listing never answers a misspelt filter with everything)."""
    query: dict[str, str] = {}
    for name, value in pairs:
        if name not in route.query:
            raise RequestError(400, "invalid_request", f"unknown query parameter: {name}")
        if name in query:
            raise RequestError(
                400, "invalid_request", f"query parameter {name} given more than once"
            )
        if not value.strip():
            raise RequestError(400, "invalid_request", f"query parameter {name} must not be blank")
        query[name] = value
    return query


def _units(lines: list[Any]) -> dict[str, int]:
    """Units per SKU of an order's lines ({"sku", "quantity"}; lines without them count none)."""
    units: dict[str, int] = {}
    for line in lines:
        if isinstance(line, dict) and isinstance(line.get("sku"), str):
            quantity = line.get("quantity")
            if _is_a(quantity, int) and quantity > 0:
                units[line["sku"]] = units.get(line["sku"], 0) + quantity
    return units


@dataclass(frozen=True)
class Route:
    """Map a method and path pattern to a Sandbox action."""

    method: str
    path: str
    action: Action | None = None
    effectful: bool = False
    # A look-up by idempotency key of what this effectful route did.
    lookup_of: Route | None = None
    # A list of what this effectful route made, by order (?order=).
    list_of: Route | None = None
    # The query parameters it takes (any other is refused).
    query: tuple[str, ...] = ()

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        """Compile the path, whose <name> segments become path parameters."""
        return re.compile(re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", self.path))


BY_ORDER = ("order",)  # a listing's filter: the order its records were made for
CAPTURE = Route("POST", "/payment/captures", Sandbox.capture, effectful=True)
REFUND = Route("POST", "/payment/refunds", Sandbox.refund, effectful=True)
ERP_SYNC = Route("POST", "/erp/orders", Sandbox.sync_order, effectful=True)
LABEL = Route("POST", "/carrier/labels", Sandbox.create_label, effectful=True)

ROUTES: list[Route] = [
    Route("GET", "/healthz", Sandbox.healthz),
    Route("GET", "/ledger", Sandbox.ledger),
    Route("GET", "/control", Sandbox.get_control),
    Route("POST", "/control", Sandbox.set_control),
    Route("POST", "/reset", Sandbox.reset),
    Route("GET", "/payment/captures", Sandbox.list_captures, query=BY_ORDER),
    CAPTURE,
    REFUND,
    ERP_SYNC,
    Route("POST", "/erp/orders/<reference>/cancel", Sandbox.cancel_order, effectful=True),
    Route("GET", "/erp/stock", Sandbox.stock_list),
    Route("POST", "/erp/stock", Sandbox.stock_set),
    LABEL,
    Route("POST", "/carrier/labels/<tracking>/void", Sandbox.void_label, effectful=True),
    Route("POST", "/analytics/events", Sandbox.track_event, effectful=True),
    # Look-ups by idempotency key: how a client settles a call whose answer it lost.
    Route("GET", "/payment/captures/by-key/<key>", lookup_of=CAPTURE),
    Route("GET", "/payment/refunds/by-key/<key>", lookup_of=REFUND),
    Route("GET", "/erp/orders/by-key/<key>", lookup_of=ERP_SYNC),
    Route("GET", "/carrier/labels/by-key/<key>", lookup_of=LABEL),
    # Look-ups by order, kept longer than keys: how a client finds an effect whose key
    # the partner may have forgotten (GET /payment/captures is the gateway's report).
    Route("GET", "/payment/refunds", list_of=REFUND, query=BY_ORDER),
    Route("GET", "/erp/orders", list_of=ERP_SYNC, query=BY_ORDER),
    Route("GET", "/carrier/labels", list_of=LABEL, query=BY_ORDER),
    Route("GET", "/webhooks", Sandbox.webhooks_report),
    Route("POST", "/webhooks/events", Sandbox.webhooks_enqueue),
    Route("POST", "/webhooks/send", Sandbox.webhooks_send),
]


# --- HTTP ----------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Translate HTTP/1.1 keep-alive requests to Sandbox.handle calls."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; with Nagle each keep-alive answer stalls ~40ms.
    disable_nagle_algorithm = True
    server: SandboxServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        # Read the whole body even when unused, or the next keep-alive request starts mid-body.
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        reply = self.server.sandbox.handle(
            method,
            unquote(url.path),
            self.headers.get("Idempotency-Key"),
            raw,
            parse_qsl(url.query, keep_blank_values=True),
        )
        if reply is LOST:
            self.close_connection = True  # closed without a word: the answer is lost
            return
        status, body = reply
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status in (429, 503) and "retry_after_s" in body:
            self.send_header("Retry-After", str(body["retry_after_s"]))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("SANDBOX_VERBOSE") == "1":
            super().log_message(format, *args)


class SandboxServer(ThreadingHTTPServer):
    """Serve one Sandbox, a thread per connection."""

    daemon_threads = True
    allow_reuse_address = True
    # Tests fire bursts of concurrent connections; the default backlog of 5 would stall them.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that give up (e.g. on an injected timeout) hang up on us; that is expected.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def make_server(
    host: str = "127.0.0.1", port: int = 8100, sandbox: Sandbox | None = None
) -> ThreadingHTTPServer:
    """Bind the sandbox partners to host:port; call serve_forever() to run them."""
    return SandboxServer((host, port), sandbox or Sandbox())


def serve_in_thread(port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Serve a fresh Sandbox from a daemon thread; return the server and its base URL."""
    server = make_server(port=port)
    # shutdown() waits up to one poll interval; a short one keeps test teardown quick.
    serve = functools.partial(server.serve_forever, poll_interval=0.05)
    threading.Thread(target=serve, name="sandbox-partners", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"
