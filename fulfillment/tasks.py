from engine.runner import STEP_TASK, step_run
from fulfillment.services import (
    order_erp_cancel,
    order_erp_sync,
    order_invoice_render,
    order_label_purchase,
    order_label_void,
)
from kit.tasks import renamed_shared_task

# Each step's task bears its step's name stem (orders/pipeline.py); renamed_shared_task
# also registers it under the name it had before, for one release (RENAMED_TASKS in
# config/queues.py).


@renamed_shared_task(name="fulfillment.erp_sync", soft_time_limit=30, time_limit=60, **STEP_TASK)
def erp_sync(self, order_id: int) -> None:
    """Idempotent: the reference is kept on the order; the ERP dedupes by order:erp_sync key."""
    step_run(task=self, subject_id=order_id, name="erp_sync", work=order_erp_sync)


# Rendering is CPU work on the worker; a long order still renders in well under 60 s.
@renamed_shared_task(
    name="fulfillment.invoice_render", soft_time_limit=60, time_limit=90, **STEP_TASK
)
def invoice_render(self, order_id: int) -> None:
    """Idempotent: one Invoice row per order; a second run returns the stored file."""
    step_run(task=self, subject_id=order_id, name="invoice_render", work=order_invoice_render)


@renamed_shared_task(
    name="fulfillment.label_purchase", soft_time_limit=30, time_limit=60, **STEP_TASK
)
def label_purchase(self, order_id: int) -> None:
    """Idempotent: one Shipment row per order; the carrier dedupes by order:label key."""
    step_run(task=self, subject_id=order_id, name="label_purchase", work=order_label_purchase)


@renamed_shared_task(name="fulfillment.erp_cancel", soft_time_limit=30, time_limit=60, **STEP_TASK)
def erp_cancel(self, order_id: int) -> None:
    """Idempotent: outcome recorded on the step; the ERP dedupes by order:erp_cancel key."""
    step_run(task=self, subject_id=order_id, name="erp_cancel", work=order_erp_cancel)


@renamed_shared_task(name="fulfillment.label_void", soft_time_limit=30, time_limit=60, **STEP_TASK)
def label_void(self, order_id: int) -> None:
    """Idempotent: outcome recorded on the step; the carrier dedupes by order:label_void key."""
    step_run(task=self, subject_id=order_id, name="label_void", work=order_label_void)
