"""The inbox: store each partner event once, then apply each order's events one at a
time, in event-time order, on the medium queue.

Storing is the request's one transaction (unique per partner and event id, so a repeated
delivery stores nothing). Processing takes the order's row lock, then its waiting events
in `occurred_at` order, and applies each in a savepoint of the same transaction, where
it is also marked processed: a worker killed half-way rolls the whole transaction back
and the events wait for the next run (the sweep publishes it). Everything an event does
is in the database, so this transaction is the lease: no claim outlives its worker's
connection. An event whose order is not there (its checkout not committed yet) waits and
is tried again (1, 2, 4 ... WEBHOOK_RETRY_MAX_S seconds) until WEBHOOK_ORDER_WAIT_S.
"""

import logging
from collections import Counter
from datetime import datetime, timedelta

import redis
from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now
from django.utils import timezone

from kit.redis import shared_redis
from orders.lock_objects import order_for_update_by_number
from orders.models import Order
from webhooks.events import HANDLERS, ParsedEvent
from webhooks.models import InboxEvent

logger = logging.getLogger(__name__)
PROCESS_TASK = "webhooks.order_events_process"
COUNTS_KEY = "shopflow:webhooks:events"


def events_count(counts: Counter[tuple[str, str, str]]) -> None:
    """Add to the Redis counters of events by partner, type and outcome (for /metrics)."""
    if not counts:
        return
    try:
        pipe = shared_redis().pipeline()
        for (partner, kind, outcome), n in counts.items():
            pipe.hincrby(COUNTS_KEY, f"{partner}|{kind}|{outcome}", n)
        pipe.execute()
    except redis.RedisError:
        logger.warning("webhook events not counted: Redis unavailable")


def event_totals() -> dict[tuple[str, str, str], int]:
    return {
        tuple(field.decode().split("|", 2)): int(n)
        for field, n in shared_redis().hgetall(COUNTS_KEY).items()
    }


def _process_publish(order_number: str) -> None:
    current_app.send_task(PROCESS_TASK, args=[order_number])


def inbox_event_store(*, partner: str, event: ParsedEvent, body: str, payload: dict) -> bool:
    """Store the event unless this partner sent its id before; return whether it is new.
    A new event of a known type is published for processing after commit; one of a type
    we do not act on is stored as ignored."""
    now = timezone.now()
    row = InboxEvent(
        partner=partner,
        event_id=event.event_id,
        type=event.type,
        order_number=event.order_number,
        occurred_at=event.occurred_at,
        body=body,
        payload=payload,
        # Due at once, on the database's clock, which the processing compares with.
        next_attempt_at=Now(),
    )
    if not event.known:
        row.status, row.processed_at = InboxEvent.Status.IGNORED, now
        row.outcome = "a type we do not act on: stored only"
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        return False  # (partner, event id) is stored already: a repeated delivery
    outcomes = [(partner, event.type, "received")]
    if not event.known:
        outcomes.append((partner, event.type, "ignored"))
    transaction.on_commit(lambda: events_count(Counter(outcomes)))
    if event.known:
        transaction.on_commit(lambda: _process_publish(event.order_number), robust=True)
    return True


def _backoff_s(attempts: int) -> float:
    return min(2 ** max(attempts - 1, 0), settings.WEBHOOK_RETRY_MAX_S)


def _wait(event: InboxEvent, *, now: datetime, error: str, give_up: bool) -> str:
    event.attempts += 1
    event.attempted_at, event.last_error = now, error[:2000]
    if give_up:
        event.status, event.processed_at = InboxEvent.Status.FAILED, now
        event.next_attempt_at = None
    else:
        # On the database's clock, as the due check is.
        event.next_attempt_at = ExpressionWrapper(
            Now() + timedelta(seconds=_backoff_s(event.attempts)), output_field=DateTimeField()
        )
    event.save()
    return "failed" if give_up else "retrying"


def _apply(order: Order, event: InboxEvent, *, now: datetime) -> str:
    parsed = ParsedEvent(
        event.event_id,
        event.type,
        event.occurred_at,
        event.order_number,
        event.payload.get("data", {}),
        True,
    )
    try:
        with transaction.atomic():
            outcome = HANDLERS[event.partner][event.type](order, parsed)
    except Exception as exc:
        logger.exception(
            "webhook event failed", extra={"event": event.event_id, "order": order.number}
        )
        order.refresh_from_db()  # what the savepoint rolled back
        return _wait(
            event,
            now=now,
            error=f"{type(exc).__name__}: {exc}",
            give_up=event.attempts + 1 >= settings.WEBHOOK_MAX_ATTEMPTS,
        )
    event.attempts += 1
    event.status, event.outcome = InboxEvent.Status.PROCESSED, outcome[:200]
    event.attempted_at = event.processed_at = now
    event.next_attempt_at, event.last_error = None, ""
    event.save()
    return "processed"


def order_events_process(*, order_number: str, now: datetime | None = None) -> float | None:
    """Apply the order's events that are due (on the database's clock), oldest event time
    first, under the order's row lock. Return in how many seconds the earliest event this
    run left waiting is due (None: it left none; others wait on their own retry or the
    sweep)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    retry_in: list[float] = []
    with transaction.atomic():
        order = order_for_update_by_number(number=order_number).first()
        # Once the lock is held: an order's batches are stamped in the order they ran.
        now = now or timezone.now()
        due = list(
            InboxEvent.objects.select_for_update()
            .filter(
                order_number=order_number,
                status=InboxEvent.Status.RECEIVED,
                next_attempt_at__lte=Now(),
            )
            .order_by("occurred_at", "pk")
        )
        for event in due:
            if order is None:
                waited = (now - event.received_at).total_seconds()
                outcome = _wait(
                    event,
                    now=now,
                    error=f"No order {order_number} (yet: its checkout may not have committed).",
                    give_up=waited >= settings.WEBHOOK_ORDER_WAIT_S,
                )
            else:
                outcome = _apply(order, event, now=now)
            counts[(event.partner, event.type, outcome)] += 1
            if outcome == "retrying":
                retry_in.append(_backoff_s(event.attempts))
        transaction.on_commit(lambda: events_count(counts))
    return min(retry_in, default=None)


def events_sweep(*, now: datetime | None = None) -> list[str]:
    """Publish the orders whose events are due and were not run (a lost message, a killed
    worker, a retry message that never came); return their numbers."""
    now = now or timezone.now()
    numbers = list(
        InboxEvent.objects.filter(
            status=InboxEvent.Status.RECEIVED,
            next_attempt_at__lte=now - timedelta(seconds=settings.WEBHOOK_SWEEP_AFTER_S),
        )
        .order_by("order_number")
        .values_list("order_number", flat=True)
        .distinct()[: settings.RECONCILE_BATCH]
    )
    for number in numbers:
        _process_publish(number)
    return numbers
