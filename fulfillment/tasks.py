from celery import shared_task

from fulfillment.services import erp_order_sync, invoice_render, label_purchase
from orders.runner import step_run


@shared_task(bind=True, name="fulfillment.sync_erp", soft_time_limit=30, time_limit=60)
def sync_erp(self, order_id: int) -> None:
    """Idempotent: the reference is kept on the order; the ERP dedupes by order:erp_sync key."""
    step_run(task=self, order_id=order_id, name="erp_sync", work=erp_order_sync)


# Rendering is CPU work on the worker; a long order still renders in well under 60 s.
@shared_task(bind=True, name="fulfillment.render_invoice", soft_time_limit=60, time_limit=90)
def render_invoice(self, order_id: int) -> None:
    """Idempotent: one Invoice row per order; a second run returns the stored file."""
    step_run(task=self, order_id=order_id, name="invoice", work=invoice_render)


@shared_task(bind=True, name="fulfillment.purchase_label", soft_time_limit=30, time_limit=60)
def purchase_label(self, order_id: int) -> None:
    """Idempotent: one Shipment row per order; the carrier dedupes by order:label key."""
    step_run(task=self, order_id=order_id, name="label", work=label_purchase)
