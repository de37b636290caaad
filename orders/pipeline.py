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
        if not 0 <= retries_done < len(self.delays):
            return None
        delay = self.delays[retries_done] * settings.PIPELINE_RETRY_DELAY_SCALE
        # Jitter spreads the retries of many orders that failed together.
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter)


URGENT = RetryPolicy.exponential(base=1, cap=16, retries=5)  # 1, 2, 4, 8, 16 s
SLOW_PARTNER = RetryPolicy(delays=(10, 60, 600))
# Compensations may wait for the step they undo to finish (up to its time limit).
COMPENSATION = RetryPolicy(delays=(2, 5, 10, 30, 60, 120, 600))


@dataclass(frozen=True)
class StepSpec:
    name: str
    task: str
    retry: RetryPolicy
    after: str | None = None
    # A step whose final failure fails the whole order (no payment, no order).
    fails_order: bool = False
    # The partner it calls: its circuit breaker defers the step while open.
    partner: str | None = None
    # For a compensation: the forward step whose effect it undoes.
    undoes: str | None = None

    @property
    def queue(self) -> str:
        return queue_for(self.task)


PIPELINE: tuple[StepSpec, ...] = (
    StepSpec("payment", "orders.capture_payment", URGENT, fails_order=True, partner="payment"),
    StepSpec(
        "confirmation_email", "notifications.send_order_confirmation", URGENT, after="payment"
    ),
    StepSpec("erp_sync", "fulfillment.sync_erp", SLOW_PARTNER, after="payment", partner="erp"),
    StepSpec("invoice", "fulfillment.render_invoice", URGENT, after="payment"),
    StepSpec(
        "label", "fulfillment.purchase_label", SLOW_PARTNER, after="erp_sync", partner="carrier"
    ),
    StepSpec(
        "analytics", "orders.track_analytics", SLOW_PARTNER, after="payment", partner="analytics"
    ),
)

# Added to an order that is cancelled: undo what the partners did, tell the customer.
# Emails, the invoice and analytics have nothing a partner can take back.
CANCELLATION: tuple[StepSpec, ...] = (
    StepSpec("refund", "orders.refund_payment", COMPENSATION, partner="payment", undoes="payment"),
    StepSpec(
        "erp_cancel", "fulfillment.cancel_erp", COMPENSATION, partner="erp", undoes="erp_sync"
    ),
    StepSpec(
        "label_void", "fulfillment.void_label", COMPENSATION, partner="carrier", undoes="label"
    ),
    StepSpec("cancellation_email", "notifications.send_order_cancelled", URGENT),
)
# Added to an order whose payment failed for good: tell the customer.
PAYMENT_FAILURE: tuple[StepSpec, ...] = (
    StepSpec("payment_failed_email", "notifications.send_payment_failed", URGENT),
)

ALL_STEPS = PIPELINE + CANCELLATION + PAYMENT_FAILURE
STEPS: dict[str, StepSpec] = {spec.name: spec for spec in ALL_STEPS}
STEP_BY_TASK: dict[str, StepSpec] = {spec.task: spec for spec in ALL_STEPS}
POSITION: dict[str, int] = {spec.name: n for n, spec in enumerate(ALL_STEPS)}
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
