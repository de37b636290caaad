"""The order pipeline, declared in one place: its steps, their tasks, retry policies,
what each waits for, and the hooks through which the step engine tells the order
domain what happened. Queues come from the routing table in config/queues.py.

Payment gates everything. After it the steps fan out in parallel, except the
shipping label, which needs the ERP reference and so waits for the ERP sync.
"""

from engine.pipeline import Hooks, Pipeline, StepSpec
from kit.retry import RetryPolicy

URGENT = RetryPolicy.exponential(base=1, cap=16, retries=5)  # 1, 2, 4, 8, 16 s
SLOW_PARTNER = RetryPolicy(delays=(10, 60, 600))
# Compensations may wait for the step they undo to finish (up to its time limit).
COMPENSATION = RetryPolicy(delays=(2, 5, 10, 30, 60, 120, 600))


PIPELINE: tuple[StepSpec, ...] = (
    StepSpec("payment", "orders.capture_payment", URGENT, fails_subject=True, partner="payment"),
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

_HOOKS = "orders.services.pipeline"
ORDER_PIPELINE = Pipeline(
    step_model="orders.Step",
    subject="order",
    forward=PIPELINE,
    followups=CANCELLATION + PAYMENT_FAILURE,
    hooks=Hooks(
        step_succeeded=f"{_HOOKS}.order_step_succeeded",
        step_failed=f"{_HOOKS}.order_step_failed",
        subject_ended=f"{_HOOKS}.order_ended_for_step",
        subject_reopen=f"{_HOOKS}.order_reopen_for_step",
        subjects_settle=f"{_HOOKS}.orders_settle",
    ),
)

ALL_STEPS = ORDER_PIPELINE.all_steps
STEPS = ORDER_PIPELINE.steps
STEP_BY_TASK = ORDER_PIPELINE.by_task
POSITION = ORDER_PIPELINE.position
FORWARD_NAMES = ORDER_PIPELINE.forward_names
