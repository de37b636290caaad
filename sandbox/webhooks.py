"""The sandbox's partners calling the shop back: signed webhooks, as a real gateway or
carrier sends them, with injected delay, duplicates, reordering and bad signatures.

Each event is put in an outbox; sender threads deliver it to `<webhook_url>/webhooks/
<partner>` signed with HMAC-SHA256 over `<timestamp>.<body>` (`Webhook-Timestamp`,
`Webhook-Signature: v1=<hex>`), and deliver it again after a failure (a non-2xx answer,
a refused connection) with backoff, as partners do, up to MAX_ATTEMPTS times. Every
attempt is recorded (GET /webhooks). Stdlib only, like the rest of the sandbox.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_ATTEMPTS = 8
SENDERS = 4
WEBHOOK_PARTNERS = ("payment", "carrier")
# The carrier's scans after a label, in the order they happen.
TRACKING = ("label.printed", "shipment.in_transit", "shipment.out_for_delivery")
DELIVERED = "shipment.delivered"


def sign(*, secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def event_body(
    *, partner: str, kind: str, order: str, data: dict[str, Any], occurred_at: str | None = None
) -> dict[str, Any]:
    return {
        "id": f"evt_{secrets.token_hex(10)}",
        "type": kind,
        "occurred_at": occurred_at or datetime.now(UTC).isoformat(),
        "data": {"order": order, **data},
    }


@dataclass
class Delivery:
    """One event and every attempt to deliver it."""

    partner: str
    body: dict[str, Any]
    attempts: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False  # answered 2xx, or given up

    def as_json(self) -> dict[str, Any]:
        answered = [a["status"] for a in self.attempts]
        return {
            "partner": self.partner,
            "id": self.body["id"],
            "type": self.body["type"],
            "order": self.body["data"].get("order"),
            "occurred_at": self.body["occurred_at"],
            "attempts": self.attempts,
            "delivered": any(isinstance(s, int) and 200 <= s < 300 for s in answered),
            "done": self.done,
        }


def post(
    *,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float = 5.0,
) -> tuple[int | str, Any]:
    """POST and return (status, parsed answer); a connection error as ("error", text)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (OSError, ValueError) as error:
        return "error", f"{type(error).__name__}: {error}"
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode("utf-8", "replace")[:500]


class WebhookSender:
    """The outbox of events to send and the threads that send them."""

    def __init__(self, config_of, rng: random.Random) -> None:
        self._config_of = config_of  # returns the sandbox's current Config
        self._random = rng
        self._cond = threading.Condition()
        self._waiting: list[tuple[float, Delivery]] = []  # (not before, delivery)
        self._all: list[Delivery] = []
        self._generation = 0  # a reset drops what is being sent
        self._inflight = 0
        self._threads: list[threading.Thread] = []

    def clear(self) -> None:
        with self._cond:
            self._waiting.clear()
            self._all = []
            self._inflight = 0
            self._generation += 1

    def _start(self) -> None:
        if not self._threads:
            for n in range(SENDERS):
                thread = threading.Thread(target=self._run, name=f"webhooks-{n}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def enqueue(self, partner: str, body: dict[str, Any]) -> Delivery:
        """Queue one event; it may go out twice (duplicate rate) and after a delay."""
        config = self._config_of()
        delivery = Delivery(partner, body)
        copies = 2 if self._random.random() < config.webhook_duplicate_rate else 1
        with self._cond:
            self._start()
            self._all.append(delivery)
            for _ in range(copies):
                self._waiting.append((time.monotonic() + self._delay(config), delivery))
            self._cond.notify_all()
        return delivery

    def _delay(self, config) -> float:
        return self._random.uniform(*config.webhook_delay_ms) / 1000

    def _take(self) -> tuple[int, Delivery] | None:
        with self._cond:
            while True:
                now = time.monotonic()
                due = [i for i, (at, _) in enumerate(self._waiting) if at <= now]
                if due:
                    # Oldest first, unless this one is reordered: any due one goes first.
                    reorder = self._random.random() < self._config_of().webhook_reorder_rate
                    index = self._random.choice(due) if reorder else due[0]
                    self._inflight += 1
                    return self._generation, self._waiting.pop(index)[1]
                soonest = min((at for at, _ in self._waiting), default=None)
                self._cond.wait(None if soonest is None else max(0.001, soonest - now))

    def _run(self) -> None:
        while True:
            generation, delivery = self._take()
            status = self._send(delivery)
            with self._cond:
                self._inflight -= 1
                if generation != self._generation:
                    continue
                attempts = len(delivery.attempts)
                if isinstance(status, int) and 200 <= status < 300:
                    delivery.done = True
                elif attempts < MAX_ATTEMPTS:
                    backoff = min(0.05 * 2**attempts, 5.0)
                    self._waiting.append((time.monotonic() + backoff, delivery))
                    self._cond.notify_all()
                else:
                    delivery.done = True

    def _send(self, delivery: Delivery) -> int | str:
        config = self._config_of()
        if not config.webhook_url:
            status: int | str = "error"
            answer: Any = "no webhook_url set"
            bad = False
        else:
            body = json.dumps(delivery.body).encode()
            timestamp = str(int(time.time()))
            bad = self._random.random() < config.webhook_bad_signature_rate
            secret = config.webhook_secrets.get(delivery.partner, "")
            signature = sign(
                secret=("not-" + secret) if bad else secret, timestamp=timestamp, body=body
            )
            status, answer = post(
                url=f"{config.webhook_url.rstrip('/')}/webhooks/{delivery.partner}",
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "Webhook-Timestamp": timestamp,
                    "Webhook-Signature": f"v1={signature}",
                },
            )
        with self._cond:
            delivery.attempts.append({"status": status, "answer": answer, "bad_signature": bad})
        return status

    def report(self) -> dict[str, Any]:
        with self._cond:
            return {
                # Queued or being sent, duplicates and retries included.
                "pending": len(self._waiting) + self._inflight,
                "deliveries": [d.as_json() for d in self._all],
            }


def tracking_events(*, order: str, tracking: str, delivered: bool) -> list[dict[str, Any]]:
    """The carrier's events after a label, a minute apart in event time."""
    start = datetime.now(UTC)
    kinds = (*TRACKING, DELIVERED) if delivered else TRACKING
    return [
        event_body(
            partner="carrier",
            kind=kind,
            order=order,
            data={"tracking_number": tracking},
            occurred_at=(start + timedelta(minutes=n)).isoformat(),
        )
        for n, kind in enumerate(kinds)
    ]


def send_once(config, spec: dict[str, Any]) -> tuple[int | str, Any]:
    """Send one request now, shaped by `spec` (POST /webhooks/send), and return the shop's
    answer: for the tests of what the shop refuses. `spec`: partner; body (a string sent
    as it is) or event ({type, order, data, id?, occurred_at?}); content_type; secret (to
    sign with; default the partner's); timestamp_offset_s; omit (headers to leave out:
    "timestamp", "signature"); pad_to_bytes (the body padded with spaces to this size)."""
    partner = spec.get("partner")
    if partner not in WEBHOOK_PARTNERS:
        raise ValueError(f"partner must be one of {', '.join(WEBHOOK_PARTNERS)}")
    if "body" in spec:
        if not isinstance(spec["body"], str):
            raise ValueError("body must be a string")
        body = spec["body"].encode()
    else:
        event = spec.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise ValueError("event must be an object with a type")
        built = event_body(
            partner=partner,
            kind=event["type"],
            order=event.get("order", ""),
            data=event.get("data", {}),
            occurred_at=event.get("occurred_at"),
        )
        if "id" in event:
            built["id"] = event["id"]
        body = json.dumps(built).encode()
    pad = spec.get("pad_to_bytes")
    if isinstance(pad, int) and pad > len(body):
        body += b" " * (pad - len(body))
    timestamp = str(int(time.time() + float(spec.get("timestamp_offset_s", 0))))
    secret = spec.get("secret", config.webhook_secrets.get(partner, ""))
    headers = {"Content-Type": spec.get("content_type", "application/json")}
    omit = spec.get("omit", [])
    if "timestamp" not in omit:
        headers["Webhook-Timestamp"] = timestamp
    if "signature" not in omit:
        headers["Webhook-Signature"] = f"v1={sign(secret=secret, timestamp=timestamp, body=body)}"
    if not config.webhook_url:
        raise ValueError("set webhook_url first (POST /control)")
    return post(
        url=f"{config.webhook_url.rstrip('/')}/webhooks/{partner}", body=body, headers=headers
    )
