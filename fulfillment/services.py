from collections.abc import Callable
from typing import Any

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from fpdf import FPDF

import partners
from fulfillment.models import Invoice, Shipment
from kit.money import money_format as money
from kit.options import moment_parse
from orders.models import Order
from orders.selectors import step_key_age_s


def order_erp_sync(order: Order) -> dict[str, Any]:
    """Push the order to the ERP once and keep on the order its reference and when the
    ERP took it: a fact the stock sync reads, which no cleanup of steps deletes."""
    if order.erp_reference and order.erp_acknowledged_at:
        return {"erp_reference": order.erp_reference}
    lines = list(order.lines.values("sku", "quantity", "unit_price_cents"))
    reference, acknowledged_at = partners.erp_sync(
        order_number=order.number, lines=lines, total_cents=order.total_cents
    )
    return _erp_synced(order, reference, acknowledged_at)


def order_erp_sync_settle(order: Order) -> dict[str, Any] | None:
    """After a sync whose answer was lost: the ERP's order under the order's key, kept as
    the answer would have been; None if the ERP has none."""
    found = partners.erp_sync_find(
        order_number=order.number, key_age_s=step_key_age_s(order_id=order.pk, name="erp_sync")
    )
    return None if found is None else _erp_synced(order, *found)


def _erp_synced(order: Order, reference: str, acknowledged_at: str) -> dict[str, Any]:
    acknowledged = moment_parse(acknowledged_at)
    Order.objects.filter(pk=order.pk).update(
        erp_reference=reference, erp_acknowledged_at=acknowledged
    )
    order.erp_reference, order.erp_acknowledged_at = reference, acknowledged
    return {"erp_reference": reference}


def invoice_pdf_build(order: Order) -> bytes:
    """Lay out the invoice of an order as a PDF document."""
    pdf = FPDF()
    pdf.set_title(f"Invoice {order.number}")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, f"Invoice {order.number}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    address = order.shipping_address
    for text in (
        f"Date: {order.created_at:%Y-%m-%d}",
        f"Bill to: {address['name']}, {address['line1']}, {address['postal_code']} "
        f"{address['city']}, {address['country']}",
        f"Email: {order.email}",
    ):
        pdf.cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    rows = [("SKU", "Item", "Qty", "Unit price", "Amount")] + [
        (
            line.sku,
            line.name,
            str(line.quantity),
            money(line.unit_price_cents, order.currency),
            money(line.total_cents, order.currency),
        )
        for line in order.lines.order_by("pk")
    ]
    _lines_table(pdf, rows)
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, f"Total: {money(order.total_cents, order.currency)}", align="R")
    return bytes(pdf.output())


INVOICE_COLUMNS = ((30, "LEFT"), (80, "LEFT"), (20, "RIGHT"), (30, "RIGHT"), (30, "RIGHT"))


def _lines_table(pdf: FPDF, rows: list[tuple[str, ...]]) -> None:
    """Draw the invoice lines: as plain bordered cells when every text fits its column
    (a fifth of the CPU of fpdf2's table, the invoice step's largest cost), else as a
    table that wraps the long ones."""
    room = [width - 2 * pdf.c_margin for width, _ in INVOICE_COLUMNS]
    if all(pdf.get_string_width(t) <= r for row in rows for t, r in zip(row, room, strict=True)):
        for row in rows:
            for (width, align), text in zip(INVOICE_COLUMNS, row, strict=True):
                pdf.cell(width, 7, text, border=1, align=align[0])
            pdf.ln()
        return
    widths, aligns = zip(*INVOICE_COLUMNS, strict=True)
    with pdf.table(col_widths=widths, text_align=aligns) as table:
        for row in rows:
            table.row(row)


def order_invoice_render(order: Order) -> dict[str, Any]:
    """Render and store the invoice PDF once per order."""
    existing = Invoice.objects.filter(order=order).first()
    if existing:
        return {"file": existing.file.name}
    invoice = Invoice(order=order)
    invoice.file.save(f"{order.number}.pdf", ContentFile(invoice_pdf_build(order)), save=False)
    try:
        with transaction.atomic():
            invoice.save()
    except IntegrityError:
        # A concurrent delivery stored it first; keep theirs and drop our file.
        invoice.file.delete(save=False)
        invoice = Invoice.objects.get(order=order)
    return {"file": invoice.file.name}


def order_label_purchase(order: Order) -> dict[str, Any]:
    """Buy the shipping label once (the carrier dedupes by key) and store it."""
    existing = Shipment.objects.filter(order=order).first()
    if existing:
        return {"tracking_number": existing.tracking_number}
    tracking_number, label_zpl = partners.label_purchase(
        order_number=order.number,
        erp_reference=order.erp_reference,
        address=order.shipping_address,
    )
    return _label_bought(order, tracking_number, label_zpl)


def order_label_purchase_settle(order: Order) -> dict[str, Any] | None:
    """After a purchase whose answer was lost: the carrier's label under the order's key,
    stored as the answer's would have been; None if the carrier sold none."""
    found = partners.label_purchase_find(
        order_number=order.number,
        key_age_s=step_key_age_s(order_id=order.pk, name="label_purchase"),
    )
    return None if found is None else _label_bought(order, *found)


def _label_bought(order: Order, tracking_number: str, label_zpl: str) -> dict[str, Any]:
    shipment = Shipment(order=order, tracking_number=tracking_number)
    shipment.label.save(f"{order.number}.zpl", ContentFile(label_zpl.encode()), save=False)
    try:
        with transaction.atomic():
            shipment.save()
    except IntegrityError:
        shipment.label.delete(save=False)
        shipment = Shipment.objects.get(order=order)
    return {"tracking_number": shipment.tracking_number}


def order_erp_cancel(order: Order) -> dict[str, Any]:
    """Cancel a cancelled order in the ERP, once. It exists only once the sync has finished
    with the order at the ERP or maybe there: the ERP, asked by the sync's key, says which
    when the order has no reference recorded."""
    order.refresh_from_db(fields=["erp_reference"])
    reference = _undo_target(
        order=order, recorded=order.erp_reference, find=partners.erp_sync_find, forward="erp_sync"
    )
    if reference is None:
        return {"skipped": "never synced"}
    partners.erp_cancel(order_number=order.number, erp_reference=reference)
    return {"cancelled": reference}


def order_label_void(order: Order) -> dict[str, Any]:
    """Void a cancelled order's shipping label, once. It exists only once the purchase has
    finished with a label bought or maybe bought: the carrier, asked by the purchase's
    key, says which when the order has no shipment stored."""
    recorded = Shipment.objects.filter(order=order).values_list("tracking_number", flat=True)
    tracking_number = _undo_target(
        order=order,
        recorded=recorded.first(),
        find=partners.label_purchase_find,
        forward="label_purchase",
    )
    if tracking_number is None:
        return {"skipped": "no label bought"}
    partners.label_void(order_number=order.number, tracking_number=tracking_number)
    return {"voided": tracking_number}


def _undo_target(
    *,
    order: Order,
    recorded: str | None,
    find: Callable[..., tuple[str, str] | None],
    forward: str,
) -> str | None:
    """What an undo acts on: the id recorded here, else the one the partner holds for the
    forward step's call (its look-up `find`); None when nothing is there."""
    if recorded:
        return recorded
    found = partners.effect_find(
        find, order_number=order.number, key_age_s=step_key_age_s(order_id=order.pk, name=forward)
    )
    return None if found is None else found[0]
