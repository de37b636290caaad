"""Bad steps for test workers only (celery worker --include tests.chaos.poison), in the
pipeline's own invoice step, so every run of it is bad, re-dispatched ones too:

- the invoice of an order placed for POISON_EMAIL kills the worker process that renders
  it, every time: a poison pill. In a pool of threads it first waits until a few other
  steps run beside it (up to 10 s), so the death takes innocent runs with it;
- the first run of the invoice of an order placed for HANG_EMAIL hangs for HANG_S
  before rendering: a run past its time limit (CHAOS_INVOICE_TIME_LIMIT_S, when set, is
  the invoice task's hard limit), whose late outcome must change nothing.
"""

import os
import signal
import time

from engine.blame import run_is_alone
from engine.liveness import lease_holder
from fulfillment import tasks
from orders.models import Step

POISON_EMAIL = "poison@example.com"
HANG_EMAIL = "hang@example.com"
HANG_S = 15
BESIDE = 3  # runs in the same process that the pill waits for

_render = tasks.order_invoice_render


def _running_here() -> int:
    return Step.objects.filter(status=Step.Status.RUNNING, lease_holder=lease_holder()).count()


def _render_or_misbehave(order):
    if order.email == POISON_EMAIL:
        deadline = time.monotonic() + 10
        while not run_is_alone() and _running_here() <= BESIDE and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)
    if order.email == HANG_EMAIL and order.steps.get(name="invoice_render").attempts == 1:
        time.sleep(HANG_S)
    return _render(order)


tasks.order_invoice_render = _render_or_misbehave
if os.environ.get("CHAOS_INVOICE_TIME_LIMIT_S"):
    tasks.invoice_render.time_limit = float(os.environ["CHAOS_INVOICE_TIME_LIMIT_S"])
