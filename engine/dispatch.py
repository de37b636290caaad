from celery import group
from django.db import transaction

from engine.pipeline import pipeline


def pipeline_dispatch(*, subject_id: int) -> None:
    """Publish the whole pipeline of a subject. Call after commit only."""
    pipeline().signature(subject_id=subject_id).apply_async()


def _steps_publish(subject_id: int, names: tuple[str, ...]) -> None:
    # Only called by steps_dispatch_on_commit's callback, after the commit.
    p = pipeline()
    group(p.signature(subject_id=subject_id, start=name) for name in names).apply_async()


def steps_dispatch_on_commit(*, subject_id: int, names: tuple[str, ...]) -> None:
    """Publish these steps (each with what waits on it) once the transaction commits.

    robust: a broker that is down must not undo the committed work; the steps stay
    pending and the reconciliation dispatches them.
    """

    def publish() -> None:  # named: Django's robust on_commit logs a failure by __qualname__
        _steps_publish(subject_id, names)

    transaction.on_commit(publish, robust=True)
