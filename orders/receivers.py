from django.db import transaction
from django.dispatch import receiver

from engine.dispatch import pipeline_dispatch
from orders.signals import order_placed


@receiver(order_placed)
def dispatch_pipeline_on_commit(sender, order_id: int, **kwargs) -> None:
    # robust: a broker that is down must not turn a committed order into a 500;
    # the payment step stays ready, not published, and the reconciliation publishes it.
    # A named function, not functools.partial: Django's robust on_commit logs the
    # failure with the callback's __qualname__, which a partial lacks.
    def publish() -> None:
        pipeline_dispatch(subject_id=order_id)

    transaction.on_commit(publish, robust=True)
