"""The order pipeline, declared in one place: its steps, their tasks, retry policies
and what each waits for. Queues come from the routing table in config/queues.py.

Payment gates everything. After it the steps fan out in parallel, except the
shipping label, which needs the ERP reference and so waits for the ERP sync.
"""

import random
from dataclasses import dataclass

from celery import chain, group, signature
from celery.canvas import Signature
from django.conf import settings

from config.queues import queue_for


@dataclass(frozen=True)
class RetryPolicy:
    """Delays before each retry of a transient failure; out of delays means failed."""

    delays: tuple[float, ...]
    jitter: float = 0.2

    @classmethod
    def exponential(cls, *, base: float, cap: float, retries: int) -> "RetryPolicy":
        return cls(delays=tuple(min(cap, base * 2**n) for n in range(retries)))

    def countdown(self, retries_done: int) -> float | None:
        """Seconds to wait before the next try, or None when retries are used up."""
        if retries_done >= len(self.delays):
            return None
        delay = self.delays[retries_done] * settings.PIPELINE_RETRY_DELAY_SCALE
        # Jitter spreads the retries of many orders that failed together.
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter)


URGENT = RetryPolicy.exponential(base=1, cap=16, retries=5)  # 1, 2, 4, 8, 16 s
SLOW_PARTNER = RetryPolicy(delays=(10, 60, 600))


@dataclass(frozen=True)
class StepSpec:
    name: str
    task: str
    retry: RetryPolicy
    after: str | None = None
    # A step whose final failure fails the whole order (no payment, no order).
    fails_order: bool = False

    @property
    def queue(self) -> str:
        return queue_for(self.task)


PIPELINE: tuple[StepSpec, ...] = (
    StepSpec("payment", "orders.capture_payment", URGENT, fails_order=True),
    StepSpec(
        "confirmation_email", "notifications.send_order_confirmation", URGENT, after="payment"
    ),
    StepSpec("erp_sync", "fulfillment.sync_erp", SLOW_PARTNER, after="payment"),
    StepSpec("invoice", "fulfillment.render_invoice", URGENT, after="payment"),
    StepSpec("label", "fulfillment.purchase_label", SLOW_PARTNER, after="erp_sync"),
    StepSpec("analytics", "orders.track_analytics", SLOW_PARTNER, after="payment"),
)

STEPS: dict[str, StepSpec] = {spec.name: spec for spec in PIPELINE}
STEP_BY_TASK: dict[str, StepSpec] = {spec.task: spec for spec in PIPELINE}
POSITION: dict[str, int] = {spec.name: n for n, spec in enumerate(PIPELINE)}
ROOT = PIPELINE[0].name

assert all(spec.after is None or POSITION[spec.after] < POSITION[spec.name] for spec in PIPELINE), (
    "a step must be declared after the step it waits for"
)


def step_children(name: str) -> list[StepSpec]:
    return [spec for spec in PIPELINE if spec.after == name]


def pipeline_signature(*, order_id: int, start: str = ROOT) -> Signature:
    """Build the canvas that runs `start` and everything that waits on it."""
    spec = STEPS[start]
    # Immutable: each task takes only the order id, never its parent's return value.
    head = signature(spec.task, args=(order_id,), immutable=True)
    children = [pipeline_signature(order_id=order_id, start=c.name) for c in step_children(start)]
    if not children:
        return head
    return chain(head, children[0] if len(children) == 1 else group(children))
