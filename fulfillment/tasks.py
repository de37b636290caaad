from celery import shared_task

from engine.runner import STEP_TASK, step_run
from fulfillment.services import (
    erp_order_cancel_sync,
    erp_order_sync,
    invoice_render,
    label_purchase,
    label_void,
)


@shared_task(name="fulfillment.sync_erp", soft_time_limit=30, time_limit=60, **STEP_TASK)
def sync_erp(self, order_id: int) -> None:
    """Idempotent: the reference is kept on the order; the ERP dedupes by order:erp_sync key."""
    step_run(task=self, subject_id=order_id, name="erp_sync", work=erp_order_sync)


# Rendering is CPU work on the worker; a long order still renders in well under 60 s.
@shared_task(name="fulfillment.render_invoice", soft_time_limit=60, time_limit=90, **STEP_TASK)
def render_invoice(self, order_id: int) -> None:
    """Idempotent: one Invoice row per order; a second run returns the stored file."""
    step_run(task=self, subject_id=order_id, name="invoice", work=invoice_render)


@shared_task(name="fulfillment.purchase_label", soft_time_limit=30, time_limit=60, **STEP_TASK)
def purchase_label(self, order_id: int) -> None:
    """Idempotent: one Shipment row per order; the carrier dedupes by order:label key."""
    step_run(task=self, subject_id=order_id, name="label", work=label_purchase)


@shared_task(name="fulfillment.cancel_erp", soft_time_limit=30, time_limit=60, **STEP_TASK)
def cancel_erp(self, order_id: int) -> None:
    """Idempotent: outcome recorded on the step; the ERP dedupes by order:erp_cancel key."""
    step_run(task=self, subject_id=order_id, name="erp_cancel", work=erp_order_cancel_sync)


@shared_task(name="fulfillment.void_label", soft_time_limit=30, time_limit=60, **STEP_TASK)
def void_label(self, order_id: int) -> None:
    """Idempotent: outcome recorded on the step; the carrier dedupes by order:label_void key."""
    step_run(task=self, subject_id=order_id, name="label_void", work=label_void)
