"""What operations alert on: dead letters, open breakers, queues past their promise,
queues whose live workers no longer consume them, partner events that keep failing.
The incidents themselves (open once, email ops once, resolve) are notifications/alerts.py."""

from django.conf import settings
from django.utils import timezone

from engine.breaker import breaker_states
from notifications.alerts import Condition, alerts_apply
from notifications.models import Alert
from ops.consumers import Consumption, queues_consumption
from orders.models import DeadLetter
from orders.selectors import queue_stats
from webhooks.selectors import FAILING_ATTEMPTS, events_failing_by_partner


def alerts_check() -> list[Condition]:
    """Look at dead letters, breakers, queues and their consumers; alert ops on what is past
    its threshold."""
    dead = DeadLetter.objects.count()
    conditions = [
        Condition(
            Alert.Kind.DEAD_LETTERS,
            "all",
            dead > settings.ALERT_DEAD_LETTERS,
            f"{dead} dead letters (threshold {settings.ALERT_DEAD_LETTERS}); "
            "see Orders › Dead letters in the admin.",
        )
    ]
    conditions += [
        Condition(
            Alert.Kind.BREAKER_OPEN,
            state.partner,
            state.tripped,
            f"The circuit breaker for {state.partner} is {state.state}; "
            f"{state.probes} probes sent since it opened; next probe within {state.wait_s:g}s.",
        )
        for state in breaker_states()
    ]
    stats = queue_stats()
    consumption = queues_consumption({queue.name: queue.depth for queue in stats})
    for queue, consumed in zip(stats, consumption, strict=True):
        conditions.append(stall_condition(consumed))
        conditions.append(
            Condition(
                Alert.Kind.QUEUE_DEPTH,
                queue.name,
                queue.depth > settings.ALERT_QUEUE_DEPTH,
                f"{queue.depth} messages wait on queue {queue.name} "
                f"(threshold {settings.ALERT_QUEUE_DEPTH}).",
            )
        )
        if queue.max_wait_s is not None:
            conditions.append(
                Condition(
                    Alert.Kind.QUEUE_AGE,
                    queue.name,
                    queue.late,
                    f"The oldest step queued on {queue.name} has waited "
                    f"{queue.oldest_wait_s:.0f}s, past the queue's promise of "
                    f"{queue.max_wait_s:g}s (QUEUE_MAX_WAIT_{queue.name.upper()}_S).",
                )
            )
    failing = events_failing_by_partner(now=timezone.now())
    conditions += [
        Condition(
            Alert.Kind.WEBHOOKS_FAILING,
            partner,
            failing.get(partner, 0) >= settings.ALERT_WEBHOOK_FAILURES,
            f"{failing.get(partner, 0)} {partner} webhook events failed or still wait after "
            f"{FAILING_ATTEMPTS} tries in the last hour (threshold "
            f"{settings.ALERT_WEBHOOK_FAILURES}); see Partner webhooks › Webhook events.",
        )
        for partner in settings.WEBHOOK_PARTNERS
    ]
    return alerts_apply(conditions)


def stall_condition(consumed: Consumption) -> Condition:
    workers = ", ".join(
        f"{c.node} ({c.concurrency - c.busy} of {c.concurrency} slots free)"
        for c in consumed.stalled
    )
    return Condition(
        Alert.Kind.QUEUE_STALLED,
        consumed.queue,
        bool(consumed.stalled),
        f"Messages have waited on {consumed.queue} for {consumed.waiting_for_s:.0f}s and "
        f"its live workers {workers} took none of them in {settings.CONSUMER_STALL_S:g}s: "
        "they no longer consume the queue (a known Celery fault after a broker reconnect). "
        "Restart them.",
    )
