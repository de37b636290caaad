from celery.signals import after_task_publish
from django.db import transaction
from django.dispatch import receiver

from orders.pipeline import STEP_BY_TASK
from orders.services.dispatch import pipeline_dispatch
from orders.services.steps import step_mark_queued
from orders.signals import order_placed


@receiver(order_placed)
def dispatch_pipeline_on_commit(sender, order_id: int, **kwargs) -> None:
    # robust: a broker that is down must not turn a committed order into a 500;
    # the payment step stays pending and the reconciliation dispatches it.
    # A named function, not functools.partial: Django's robust on_commit logs the
    # failure with the callback's __qualname__, which a partial lacks.
    def publish() -> None:
        pipeline_dispatch(order_id=order_id)

    transaction.on_commit(publish, robust=True)


@after_task_publish.connect
def mark_step_queued(sender: str | None = None, headers=None, body=None, **kwargs) -> None:
    spec = STEP_BY_TASK.get(sender or "")
    if spec is None:
        return
    args = body[0]  # task protocol 2: (args, kwargs, embed)
    step_mark_queued(order_id=args[0], name=spec.name, task_id=headers["id"])
