from celery import group
from django.db import transaction

from engine.models import StepRecord
from engine.pipeline import pipeline


def pipeline_dispatch(*, subject_id: int) -> None:
    """Publish the whole pipeline of a subject. Call after commit only."""
    pipeline().signature(subject_id=subject_id).apply_async()


def _steps_publish(subject_id: int, names: tuple[str, ...]) -> None:
    # Only called by steps_dispatch_on_commit's callback, after the commit. Each step
    # alone: what waits on it is published when it succeeds (engine/runner.py), so a
    # re-dispatch never copies work that is already queued.
    p = pipeline()
    group(p.step_signature(subject_id=subject_id, name=name) for name in names).apply_async()


def steps_dispatch_on_commit(*, subject_id: int, names: tuple[str, ...]) -> None:
    """Publish these steps, each alone, once the transaction commits.

    robust: a broker that is down must not undo the committed work; the steps stay
    pending and the reconciliation dispatches them.
    """

    def publish() -> None:  # named: Django's robust on_commit logs a failure by __qualname__
        _steps_publish(subject_id, names)

    transaction.on_commit(publish, robust=True)


def steps_publish_ready(*, subject_id: int, names: tuple[str, ...]) -> None:
    """Publish those of these steps that wait to be published (pending)."""
    pending = (
        pipeline().steps_of(subject_id).filter(name__in=names, status=StepRecord.Status.PENDING)
    )
    ready = tuple(pending.values_list("name", flat=True))
    if ready:
        steps_dispatch_on_commit(subject_id=subject_id, names=ready)
