"""Runs one pipeline step inside its Celery task: claim, work, record, retry or fail.

Every step task goes through `step_run`, so every step has the same at-least-once
behaviour: a redelivered or duplicated message finds the outcome on the step
record and does nothing, and retries happen only for transient errors.
"""

from collections.abc import Callable
from typing import Any

from celery import Task
from celery.exceptions import Ignore, SoftTimeLimitExceeded

from orders.errors import PermanentError
from orders.models import Order
from orders.pipeline import STEPS
from orders.services.steps import (
    Claim,
    step_claim,
    step_mark_failed,
    step_mark_retrying,
    step_mark_succeeded,
)

StepWork = Callable[[Order], dict[str, Any]]


def step_run(*, task: Task, order_id: int, name: str, work: StepWork) -> None:
    claim, step = step_claim(order_id=order_id, name=name, task_id=task.request.id)
    if claim is Claim.DONE:
        return  # returning lets the canvas go on to the steps after this one
    if claim is Claim.STOP:
        raise Ignore()  # acks the message without running the steps after this one
    try:
        result = work(step.order)
    except PermanentError as exc:
        step_mark_failed(step=step, error=exc)
        raise
    except (Exception, SoftTimeLimitExceeded) as exc:
        # Timeouts, 5xx, dropped connections and unexpected errors (a database
        # hiccup, a bug being fixed) are retried; retries are bounded per step.
        policy = STEPS[name].retry
        countdown = policy.countdown(task.request.retries)
        if countdown is None:
            step_mark_failed(step=step, error=exc)
            raise
        step_mark_retrying(step=step, error=exc, countdown=countdown)
        raise task.retry(exc=exc, countdown=countdown, max_retries=len(policy.delays)) from exc
    step_mark_succeeded(step=step, result=result)
