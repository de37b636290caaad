"""Signal receivers for the operations surface: task log context, retry counts,
periodic job successes, beat's start, Django's LOGGING in Celery's processes, the
consumer watchdog's beacon and takes (ops/consumers.py), and the alert when a partner's
circuit breaker opens."""

import functools
import logging.config

from celery.signals import (
    beat_init,
    setup_logging,
    task_postrun,
    task_prerun,
    task_received,
    task_retry,
    task_revoked,
    task_success,
    worker_ready,
)
from django.conf import settings
from django.dispatch import receiver
from django.utils import timezone

from engine.breaker import breaker_opened
from engine.liveness import claim_owner
from kit.logs import log_context_bind, log_context_clear
from notifications.alerts import alert_breaker_opened
from ops.consumers import beacon_start, consumer_took
from ops.counters import job_success_record, step_retry_count
from ops.health import beat_start_record
from ops.selectors import JOB_TASKS
from orders.models import Order
from orders.pipeline import STEP_BY_TASK


@setup_logging.connect
def use_django_logging(loglevel=None, **kwargs) -> None:
    # Connected, this replaces Celery's own set-up, which would swap the root handlers
    # (and so the JSON formatter and the task context filter) for its own.
    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


@task_prerun.connect
def bind_step_log_context(sender=None, args=None, **kwargs) -> None:
    log_context_clear()
    spec = STEP_BY_TASK.get(sender.name)
    if spec is None or not args:
        return
    # Looked up here, not in the runner, so lines logged before the claim carry it too.
    log_context_bind(order=_order_number(args[0]), step=spec.name)


@functools.lru_cache(maxsize=4096)
def _order_number(order_id: int) -> str | None:
    # A number never changes, and a worker runs several steps of each order: one query
    # per order and process instead of one per step.
    return Order.objects.filter(pk=order_id).values_list("number", flat=True).first()


@task_postrun.connect
def clear_log_context(**kwargs) -> None:
    log_context_clear()


@task_retry.connect
def count_step_retry(sender=None, reason=None, **kwargs) -> None:
    spec = STEP_BY_TASK.get(sender.name)
    # A retry without an exception is a breaker deferral: no call failed.
    if spec is not None and getattr(reason, "exc", None) is not None:
        step_retry_count(step=spec.name)


@task_success.connect
def record_job_success(sender=None, **kwargs) -> None:
    if sender.name in JOB_TASKS:
        job_success_record(task=sender.name)


@beat_init.connect
def record_beat_start(**kwargs) -> None:
    # Sent as beat starts, before its first tick: /readyz sees it at once, not only
    # when the first job is sent a minute later.
    beat_start_record(process=claim_owner(), at=timezone.now())


@worker_ready.connect
def start_consumer_beacon(sender=None, **kwargs) -> None:
    # In the worker's main process, where its consumer and its pool's requests live.
    beacon_start(
        node=sender.hostname,
        queues=list(sender.app.amqp.queues.consume_from),
        concurrency=sender.controller.concurrency,
    )


@task_received.connect
@task_revoked.connect
def note_message_taken(request=None, **kwargs) -> None:
    # Received, or dropped on receipt as expired or revoked: taken off its queue either
    # way. Also sent for a run revoked later; it only makes the take look more recent.
    delivery_info = getattr(request, "delivery_info", None) or {}
    consumer_took(routing_key=delivery_info.get("routing_key"))


@receiver(breaker_opened)
def alert_on_breaker_opened(sender, partner: str, **kwargs) -> None:
    alert_breaker_opened(partner=partner)
