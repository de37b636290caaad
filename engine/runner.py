"""Runs one step inside its Celery task: defer, claim, work, record, retry or fail.

Every step task goes through `step_run`, so every step has the same at-least-once
behaviour: a redelivered or duplicated message finds the outcome on the step
record and does nothing, and retries happen only for transient errors, counted
on the step record (so they survive redelivery and re-dispatch).
"""

import random
from collections.abc import Callable
from typing import Any

from celery import Task
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from django.conf import settings
from django.utils.module_loading import import_string

from engine.breaker import Admission, breaker_admit
from engine.dispatch import steps_publish_unpublished
from engine.liveness import queued_age_s
from engine.pipeline import pipeline
from engine.steps import (
    Claim,
    PoisonPill,
    step_claim,
    step_defer,
    step_mark_failed,
    step_mark_retrying,
    step_mark_succeeded,
)
from kit.errors import OutcomeUnknown, PermanentError, TransientError
from kit.logs import log_context_bind

# Takes the step's subject (loaded with the claim), returns the result to record.
StepWork = Callable[[Any], dict[str, Any]]

# Options of every step task: retries are bounded by the step's policy, not Celery's default.
STEP_TASK = {"bind": True, "max_retries": None}


def step_run(*, task: Task, subject_id: int, name: str, work: StepWork) -> None:
    p = pipeline()
    spec = p.steps[name]
    # A message from before the step records drove the graph may carry the canvas of
    # what follows; those steps are made ready from the records, so the canvas is
    # dropped here, before a retry could copy it or a success publish it.
    task.request.chain = task.request.callbacks = None
    admission = breaker_admit(spec.partner) if spec.partner else Admission(0.0)
    wait = admission.wait_s
    if wait and step_defer(
        subject_id=subject_id, name=name, seconds=wait, reason=f"{spec.partner} circuit open"
    ):
        # Not an attempt: the partner is left alone until the breaker lets calls through.
        raise task.retry(countdown=wait + _defer_jitter())
    claim, step = step_claim(
        subject_id=subject_id, name=name, task_id=task.request.id, time_limit=_time_limit(task)
    )
    log_context_bind(attempt=step.attempts)
    if claim is Claim.DONE:
        # A redelivery after a kill between recording the outcome and telling the
        # domain or publishing what it made ready: do both again (both idempotent).
        p.hook("step_succeeded")(step=step)
        _successors_publish(step)
        return
    if claim is Claim.POISON:
        step_mark_failed(step=step, error=PoisonPill(step))
    if claim in (Claim.STOP, Claim.POISON):
        raise Ignore()
    # A write that finds the lease taken (a newer run holds the step) changes nothing:
    # this run then stops there, without a retry message or the steps after it.
    try:
        subject = p.subject_of(step)
        result = None
        if claim is Claim.SETTLE and spec.settle:
            # Before anything else: what did the partner do with the earlier attempt?
            result = import_string(spec.settle)(subject)
        if result is None:
            result = work(subject)
    except PermanentError as exc:
        if not step_mark_failed(step=step, error=exc):
            raise Ignore() from exc
        raise
    except (Exception, SoftTimeLimitExceeded) as exc:
        if admission.probe and _partner_did_nothing(exc):
            # A failed probe is the breaker's, not this step's: it opened the breaker
            # again, and the step waits for the next probe as every deferred step does,
            # its attempt given back and its budget unspent. Otherwise whether an order
            # outlived an outage was a lottery: the one that happened to probe once past
            # its budget was dead-lettered, its neighbours waited for free.
            cooldown = settings.BREAKER_COOLDOWN_S
            if not step_mark_retrying(
                step=step, error=exc, countdown=cooldown, probe_of=spec.partner
            ):
                raise Ignore() from exc
            raise task.retry(exc=exc, countdown=cooldown + _defer_jitter()) from exc
        # Timeouts, 5xx, dropped connections and unexpected errors (a database
        # hiccup, a bug being fixed) are retried; retries are bounded per step, except
        # for an unknown outcome: it is asked again at the policy's last delay for as
        # long as the partner cannot say, never given up as failed.
        countdown = spec.retry.countdown(
            step.attempts - 1,
            endless=isinstance(exc, OutcomeUnknown),
            elapsed_s=queued_age_s(step.queued_at, now=getattr(step, "db_now", None)) or 0.0,
            retry_after_s=getattr(exc, "retry_after_s", None),
        )
        if countdown is None:
            if not step_mark_failed(step=step, error=exc):
                raise Ignore() from exc
            raise
        if not step_mark_retrying(step=step, error=exc, countdown=countdown):
            raise Ignore() from exc
        raise task.retry(exc=exc, countdown=countdown) from exc
    if not step_mark_succeeded(step=step, result=result):
        raise Ignore()


def _partner_did_nothing(exc: BaseException) -> bool:
    """A transient failure that surely left nothing at the partner (it said not now, or
    was unreachable); an unknown outcome is settled and retried as any other."""
    return isinstance(exc, TransientError) and not isinstance(exc, OutcomeUnknown)


def _defer_jitter() -> float:
    """Spreads the steps a breaker deferred, which wake together; a retry delay, so it
    shrinks with PIPELINE_RETRY_DELAY_SCALE (the drill on scaled time)."""
    return random.uniform(0, 2) * settings.PIPELINE_RETRY_DELAY_SCALE


def _time_limit(task: Task) -> float | None:
    """The run's hard time limit: the message's, else the task's (else the default)."""
    hard, _ = task.request.timelimit or (None, None)
    return hard or task.time_limit


def _successors_publish(step) -> None:
    """Publish the steps this one's success made ready, if their publish was lost."""
    p = pipeline()
    names = p.successors[step.name]
    if names:
        steps_publish_unpublished(subject_id=p.subject_id_of(step), names=names)
