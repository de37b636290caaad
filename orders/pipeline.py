"""The order pipeline, declared in one place: its steps, their tasks, retry policies,
what each waits for, and the hooks through which the step engine tells the order
domain what happened. Queues come from the routing table in config/queues.py.

Payment gates everything. After it the steps fan out in parallel, except the
shipping label, which needs the ERP reference and so waits for the ERP sync.

Names: each step has one stem, `<noun>_<verb>` like every service (`payment_capture`,
`label_void`, `confirmation_email_send`), and every name of the step is made from it:

    step (StepSpec.name, the step record's name, metrics and logs)   payment_capture
    task, in <app>/tasks.py, under the same name                     orders.payment_capture
    service doing the step's work on the order                       order_payment_capture
    the partner client's call, for a step that calls a partner      partners.payment_capture

Two things keep the names they had before the stems, because they left this process
before it: the step part of a partner call's idempotency key (`<order>:payment`; see
partners.idempotency_key), and, for one release, the old task names of messages already
queued (config/queues.py, RENAMED_TASKS).
"""

from config.queues import RENAMED_TASKS
from engine.pipeline import Hooks, Pipeline, StepSpec
from kit.retry import RetryPolicy

# The design's seeds, 1, 2, 4, 8, 16 s, then every 16 s (±20%) for a quarter of an hour
# from when the step was first queued: a payment outlives a gateway's short outage.
URGENT = RetryPolicy.exponential(base=1, cap=16, retries=5, budget_s=15 * 60)
# 10 s, 1 min, 10 min, then every 10 minutes for six hours: an ERP or carrier down for
# a morning delays a shipment, it does not fail it.
SLOW_PARTNER = RetryPolicy(delays=(10, 60, 600), budget_s=6 * 3600)
# An undo exists only once the step it undoes has finished (engine/compensation.py), so
# it never waits; it retries longer than a forward step, since giving up keeps money or
# goods that are not ours.
COMPENSATION = RetryPolicy(delays=(2, 5, 10, 30, 60, 120, 600))


PIPELINE: tuple[StepSpec, ...] = (
    StepSpec(
        "payment_capture",
        "orders.payment_capture",
        URGENT,
        fails_subject=True,
        partner="payment",
        settle="orders.services.payment.order_payment_capture_settle",
    ),
    StepSpec(
        "confirmation_email_send",
        "orders.confirmation_email_send",
        URGENT,
        after="payment_capture",
    ),
    StepSpec(
        "erp_sync",
        "fulfillment.erp_sync",
        SLOW_PARTNER,
        after="payment_capture",
        partner="erp",
        settle="fulfillment.services.order_erp_sync_settle",
    ),
    StepSpec("invoice_render", "fulfillment.invoice_render", URGENT, after="payment_capture"),
    StepSpec(
        "label_purchase",
        "fulfillment.label_purchase",
        SLOW_PARTNER,
        after="erp_sync",
        partner="carrier",
        settle="fulfillment.services.order_label_purchase_settle",
    ),
    StepSpec(
        "analytics_track",
        "orders.analytics_track",
        SLOW_PARTNER,
        after="payment_capture",
        partner="analytics",
    ),
)

# Added to an order that is cancelled: undo what the partners did, tell the customer.
# Emails, the invoice and analytics have nothing a partner can take back. The email is
# added at once; each undo when the step it undoes has finished with an effect that is
# or may be in place (engine/compensation.py).
CANCELLATION: tuple[StepSpec, ...] = (
    StepSpec(
        "payment_refund",
        "orders.payment_refund",
        COMPENSATION,
        partner="payment",
        undoes="payment_capture",
        settle="orders.services.payment.order_payment_refund_settle",
    ),
    StepSpec(
        "erp_cancel", "fulfillment.erp_cancel", COMPENSATION, partner="erp", undoes="erp_sync"
    ),
    StepSpec(
        "label_void",
        "fulfillment.label_void",
        COMPENSATION,
        partner="carrier",
        undoes="label_purchase",
    ),
    StepSpec("cancellation_email_send", "orders.cancellation_email_send", URGENT),
)
# Added to an order whose payment failed for good: tell the customer.
PAYMENT_FAILURE: tuple[StepSpec, ...] = (
    StepSpec("payment_failed_email_send", "orders.payment_failed_email_send", URGENT),
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
# A message under a task's old name is its step's too (its log lines, its retry counts).
STEP_BY_TASK = ORDER_PIPELINE.by_task | {
    old: ORDER_PIPELINE.by_task[new] for old, new in RENAMED_TASKS.items()
}
POSITION = ORDER_PIPELINE.position
FORWARD_NAMES = ORDER_PIPELINE.forward_names
