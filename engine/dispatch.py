"""Publishing steps: each alone, one small message, after the commit that made it ready.

A step is *ready* when a transaction made it so: its parent's success, in the transaction
that records it (engine/steps.py, step_mark_succeeded), the subject's creation (its root),
a cancel's follow-ups, a dead letter retried. Ready is `queued` with no `published_at`:
the step record is its own outbox entry. After the commit each ready step's task is
published alone, its message the subject's id (the task names the step; no chain, no
callbacks), and the step is then marked published. A publish that is lost (the process
died between the commit and the publish, the broker was down) leaves the step ready and
not published, which the reconciliation finds by its index and publishes once
(engine/reconcile.py). What waits for what is read from the pipeline's declaration only.
"""

from contextlib import AbstractContextManager, nullcontext

from celery import current_app, signature
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Now

from engine.models import StepRecord
from engine.pipeline import pipeline

Status = StepRecord.Status
# How a step the circuit breaker put off says so (last_error), and how it is found again.
DEFERRED = "deferred: "


def pipeline_dispatch(*, subject_id: int) -> None:
    """Publish a new subject's root step, which its creation made ready. Call after commit."""
    _steps_publish(subject_id, (pipeline().root,))


def _steps_publish(subject_id: int, names: tuple[str, ...], queue: str | None = None) -> None:
    # After the commit only (steps_dispatch_on_commit, pipeline_dispatch): publish, then
    # mark published, so a death in between costs a second message, never a lost one.
    p = pipeline()
    with messages_producer() as producer:
        for name in names:
            step_message_send(
                task=p.steps[name].task, subject_id=subject_id, producer=producer, queue=queue
            )
    p.steps_of(subject_id).filter(
        name__in=names, status=Status.QUEUED, published_at__isnull=True
    ).update(published_at=Now())


def messages_producer() -> AbstractContextManager:
    """One producer from the pool for a batch of messages; none when tasks run inline
    (CELERY_TASK_ALWAYS_EAGER), where each step published runs, and publishes the next,
    while the batch is under way: holding one each, checkouts at once would take the
    whole pool and wait for each other for ever."""
    if current_app.conf.task_always_eager:
        return nullcontext()
    return current_app.producer_or_acquire()


def step_message_send(*, task: str, subject_id: int, producer, queue: str | None = None) -> None:
    """One step's message on its task's queue (or on `queue`, quarantine: engine/blame.py):
    the subject's id, and nothing after it. (Through the task, so CELERY_TASK_ALWAYS_EAGER
    runs it inline: the synchronous baseline of bench/checkout.py.)"""
    options = {"queue": queue} if queue else {}
    signature(task, args=(subject_id,), app=current_app).apply_async(producer=producer, **options)


def steps_dispatch_on_commit(
    *, subject_id: int, names: tuple[str, ...], queue: str | None = None
) -> None:
    """Publish these steps, each alone, once the transaction commits: to their own
    queues, or to `queue` when given (quarantine, engine/blame.py).

    robust: a broker that is down must not undo the committed work; the steps stay
    ready and the reconciliation publishes them.
    """

    def publish() -> None:  # named: Django's robust on_commit logs a failure by __qualname__
        _steps_publish(subject_id, names, queue)

    transaction.on_commit(publish, robust=True)


def steps_ready(
    *, subject_id: int, names: tuple[str, ...], publish: bool = True
) -> tuple[str, ...]:
    """Make these pending steps ready, in the caller's transaction, and publish them
    after its commit (unless `publish` is False: the caller does); return those to
    publish. Steps no longer pending (cancelled with their subject) stay as they are and
    are not published. (A step's success does this in its own statement: engine/steps.py.)"""
    steps = pipeline().steps_of(subject_id).filter(name__in=names)
    marked = steps.filter(status=Status.PENDING).update(
        status=Status.QUEUED, queued_at=Coalesce(F("queued_at"), Now()), published_at=None
    )
    if marked == 0:
        return ()
    if marked < len(names):
        names = _unpublished(steps)
    if publish:
        steps_dispatch_on_commit(subject_id=subject_id, names=names)
    return names


def steps_publish_unpublished(*, subject_id: int, names: tuple[str, ...]) -> None:
    """Publish those of these steps that are ready and not published yet."""
    unpublished = _unpublished(pipeline().steps_of(subject_id).filter(name__in=names))
    if unpublished:
        steps_dispatch_on_commit(subject_id=subject_id, names=unpublished)


def _unpublished(steps) -> tuple[str, ...]:
    ready = steps.filter(status=Status.QUEUED, published_at__isnull=True).order_by()
    return tuple(ready.values_list("name", flat=True))


def steps_deferred_wake(*, partner: str) -> int:
    """Publish now every step the partner's circuit breaker put off: its probe answered,
    so they need not sit out the rest of their deferral (a waiter on a probe waits its
    whole token otherwise). Their deferred messages, when they come, find them done or
    running and change nothing. Returns how many."""
    p = pipeline()
    names = [spec.name for spec in p.all_steps if spec.partner == partner]
    deferred = p.model.objects.filter(
        name__in=names, status=Status.RETRYING, last_error__startswith=DEFERRED
    )
    woken = list(deferred.values_list(f"{p.subject}_id", "name"))
    with messages_producer() as producer:
        for subject_id, name in woken:
            step_message_send(task=p.steps[name].task, subject_id=subject_id, producer=producer)
    return len(woken)
