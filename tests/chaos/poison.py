"""A task that kills the worker process running it, every time: a poison pill.

Loaded only into test workers (celery worker --include tests.chaos.poison).
"""

import os
import signal

from celery import shared_task

from engine.runner import STEP_TASK, step_run


def _die(order):
    os.kill(os.getpid(), signal.SIGKILL)


@shared_task(name="tests.poison_invoice", **STEP_TASK)
def poison_invoice(self, order_id: int) -> None:
    """Runs the order's invoice step with work that kills its own process."""
    step_run(task=self, subject_id=order_id, name="invoice_render", work=_die)
