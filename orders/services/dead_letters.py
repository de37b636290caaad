"""Dead letters: steps that failed for good, kept until a person handles them."""

from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction

from orders.lock_objects import order_for_update, step_by_pk_for_update
from orders.models import DeadLetter, Order, Step
from orders.services.dispatch import steps_dispatch_on_commit
from orders.services.steps import ENDED_ORDER, FORWARD


@dataclass
class RetryReport:
    retried: list[tuple[str, str]] = field(default_factory=list)  # (order, step)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (order, step, why)


def dead_letters_select(*, step: str | None = None, since: datetime | None = None):
    letters = DeadLetter.objects.select_related("order").order_by("finished_at")
    if step:
        letters = letters.filter(name=step)
    if since:
        letters = letters.filter(finished_at__gte=since)
    return letters


def dead_letters_retry(*, step_ids: list[int]) -> RetryReport:
    """Give dead letters a fresh set of attempts and dispatch them (and what waits on them).

    Safe to repeat: a step that is no longer dead is skipped, and the steps are idempotent.
    """
    report = RetryReport()
    for pk in step_ids:
        _dead_letter_retry(pk=pk, report=report)
    return report


@transaction.atomic
def _dead_letter_retry(*, pk: int, report: RetryReport) -> None:
    step = step_by_pk_for_update(pk=pk).first()
    if step is None or step.status != Step.Status.FAILED:
        return
    order = order_for_update(order_id=step.order_id).get()
    if step.name in FORWARD and order.status in ENDED_ORDER:
        report.skipped.append((order.number, step.name, f"the order is {order.status}"))
        return
    step.status = Step.Status.PENDING
    step.attempts = 0
    step.crashes = 0
    step.last_error = ""
    step.retry_at = None
    step.finished_at = None
    step.save(
        update_fields=["status", "attempts", "crashes", "last_error", "retry_at", "finished_at"]
    )
    if order.status == Order.Status.NEEDS_ATTENTION:
        order.status = Order.Status.PAID
        order.save(update_fields=["status", "updated_at"])
    steps_dispatch_on_commit(order_id=order.pk, names=(step.name,))
    report.retried.append((order.number, step.name))
