import io

import pytest
from pypdf import PdfReader

from fulfillment.models import Invoice
from fulfillment.tasks import invoice_render
from orders.tasks import payment_capture
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db


def test_invoice_is_a_real_pdf_with_the_order_number_lines_and_total(sandbox, client):
    mug = product_create(price_cents=1490)
    tee = product_create(price_cents=2900)
    order = order_place((mug, 2), (tee, 1)).order
    payment_capture.apply(args=(order.pk,))

    invoice_render.apply(args=(order.pk,))

    response = client.get(f"/orders/{order.token}/invoice.pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    text = PdfReader(io.BytesIO(b"".join(response.streaming_content))).pages[0].extract_text()
    assert f"Invoice {order.number}" in text
    assert mug.sku in text and tee.sku in text
    assert "Total: 58.80 EUR" in text


def test_rendering_the_invoice_twice_keeps_one_file(sandbox, private_root):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))

    invoice_render.apply(args=(order.pk,))
    invoice_render.apply(args=(order.pk,))

    [invoice] = Invoice.objects.filter(order=order)
    assert [f"invoices/{p.name}" for p in (private_root / "invoices").iterdir()] == [
        invoice.file.name
    ]


def test_invoice_of_an_unknown_token_is_404(client):
    assert client.get("/orders/nope/invoice.pdf").status_code == 404


def test_an_item_name_too_long_for_its_column_is_wrapped_not_cut(sandbox):
    from fulfillment.services import invoice_pdf_build
    from shop.models import Product

    name = "Hand-thrown stoneware mug with a speckled glaze and a very long name " * 2
    product = product_create(price_cents=1490)
    Product.objects.filter(pk=product.pk).update(name=name.strip())
    order = order_place((product, 1)).order

    text = PdfReader(io.BytesIO(invoice_pdf_build(order))).pages[0].extract_text()

    assert name.strip() not in text  # broken over lines inside its column
    assert name.strip() in " ".join(text.split())
