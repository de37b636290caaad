from celery import group
from django.db import transaction

from orders.pipeline import pipeline_signature


def pipeline_dispatch(*, order_id: int, start: str | None = None) -> None:
    """Publish the pipeline (or the part from `start` on). Call after commit only."""
    kwargs = {"start": start} if start else {}
    # Only ever called from an on_commit callback (orders/receivers.py), never inside
    # the transaction that creates the steps.
    pipeline_signature(order_id=order_id, **kwargs).apply_async()


def _steps_publish(order_id: int, names: tuple[str, ...]) -> None:
    # Only called by steps_dispatch_on_commit's callback, after the commit.
    group(pipeline_signature(order_id=order_id, start=name) for name in names).apply_async()


def steps_dispatch_on_commit(*, order_id: int, names: tuple[str, ...]) -> None:
    """Publish these steps (each with what waits on it) once the transaction commits.

    robust: a broker that is down must not undo the committed work; the steps stay
    pending and the reconciliation dispatches them.
    """

    def publish() -> None:  # named: see orders/receivers.py
        _steps_publish(order_id, names)

    transaction.on_commit(publish, robust=True)
