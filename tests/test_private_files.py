"""Private files live in a private storage under random names and are served only by
views that check access (issue 15, finding 7): exports, invoices, labels and uploaded
import files were in MEDIA_ROOT beside the product images, named by sequential id or
order number, so wherever /media/ was served the order token and the export's requester
check were bypassed."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from orders.services.exports import order_export_create, order_export_run
from shop.imports import catalog_job_create
from tests.factories import order_place, product_create, run_pipeline

pytestmark = pytest.mark.django_db

RANDOM_NAME = r"{folder}/[0-9a-f]{{32}}\.{suffix}"


def staff(django_user_model, username: str, *codenames: str):
    user = django_user_model.objects.create_user(
        username, f"{username}@shop.example", "pw-123456", is_staff=True
    )
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def shipped(sandbox):
    """An order through the whole pipeline: its invoice and label are stored."""
    order = order_place((product_create(), 1)).order
    run_pipeline(order)
    order.refresh_from_db()
    return order


@pytest.fixture
def olga(django_user_model):
    return staff(django_user_model, "olga", "view_order")


@pytest.fixture
def export(olga):
    order_place((product_create(), 1))
    made = order_export_create(requester=olga, filters={}, queue=False)
    return order_export_run(export_id=made.pk)


@pytest.fixture
def catalog_job():
    feed = SimpleUploadedFile("../../evil.html", b"sku,name,price_cents,stock\nA-1,Mug,990,3\n")
    return catalog_job_create(kind="catalog", file=feed, queue=False)


def test_private_files_are_outside_media_root_under_names_nobody_can_guess(
    shipped, export, catalog_job, client
):
    files = {
        "invoices": (shipped.invoice.file, "pdf"),
        "labels": (shipped.shipment.label, "zpl"),
        "exports": (export.file, "csv"),
        "imports": (catalog_job.file, "csv"),
    }
    media = Path(settings.MEDIA_ROOT).resolve()
    for folder, (file, suffix) in files.items():
        assert re.fullmatch(RANDOM_NAME.format(folder=folder, suffix=suffix), file.name), folder
        assert shipped.number not in file.name and f"-{export.pk}." not in file.name
        path = Path(file.path).resolve()
        assert path.is_file() and media not in path.parents, folder
        assert client.get(f"/media/{file.name}").status_code == 404
    assert {f.storage for f, _ in files.values()} == {shipped.invoice.file.storage}
    assert shipped.invoice.file.storage is not product_image_storage()


def product_image_storage():
    from shop.models import ProductImage

    return ProductImage._meta.get_field("file").storage


def test_an_invoice_is_served_with_its_order_token_only(shipped, client):
    other = order_place((product_create(), 1)).order

    right = client.get(f"/orders/{shipped.token}/invoice.pdf")
    wrong = client.get(f"/orders/{other.token}/invoice.pdf")
    guessed = client.get(f"/orders/{shipped.number}/invoice.pdf")

    assert right.status_code == 200
    assert b"".join(right.streaming_content).startswith(b"%PDF")
    assert right["Cache-Control"] == "private, no-store"
    assert (wrong.status_code, guessed.status_code) == (404, 404)


@pytest.mark.parametrize(
    ("kind", "codename"),
    [("invoice", "view_invoice"), ("label", "view_shipment"), ("import", "view_catalogjob")],
)
def test_staff_files_are_refused_to_staff_without_the_permission_and_served_with_it(
    kind, codename, shipped, catalog_job, client, django_user_model
):
    url = {
        "invoice": f"/files/invoices/{shipped.invoice.pk}",
        "label": f"/files/labels/{shipped.shipment.pk}",
        "import": f"/files/imports/{catalog_job.pk}",
    }[kind]
    anonymous = client.get(url)
    client.force_login(staff(django_user_model, "nobody", "view_order"))
    refused = client.get(url)
    client.force_login(staff(django_user_model, "allowed", codename))
    served = client.get(url)

    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    assert refused.status_code == 403
    assert served.status_code == 200
    assert served["Cache-Control"] == "private, no-store"
    assert len(b"".join(served.streaming_content)) > 0


def test_an_export_is_refused_to_its_requester_once_no_longer_staff_with_the_permission(
    export, olga, client, django_user_model
):
    url = f"/exports/{export.pk}/orders.csv"
    client.force_login(olga)
    assert client.get(url).status_code == 200
    client.force_login(staff(django_user_model, "other", "view_order"))
    assert client.get(url).status_code == 403

    olga.user_permissions.clear()
    client.force_login(olga)
    without_permission = client.get(url)
    olga.user_permissions.add(Permission.objects.get(codename="view_order"))
    olga.is_staff = False
    olga.save()
    client.force_login(olga)
    former_staff = client.get(url)

    assert (without_permission.status_code, former_staff.status_code) == (403, 403)


def test_files_stored_before_the_private_storage_are_moved_there_under_random_names(
    shipped, export
):
    from django.core.files.base import ContentFile
    from django.core.files.storage import storages
    from django.core.management import call_command

    from fulfillment.models import Invoice

    public = storages["default"]
    old = public.save(f"invoices/{shipped.number}.pdf", ContentFile(b"%PDF-old"))
    Invoice.objects.filter(pk=shipped.invoice.pk).update(file=old)

    call_command("private_files_move")
    call_command("private_files_move")  # a second run finds nothing to move

    invoice = Invoice.objects.get(pk=shipped.invoice.pk)
    assert re.fullmatch(RANDOM_NAME.format(folder="invoices", suffix="pdf"), invoice.file.name)
    assert invoice.file.read() == b"%PDF-old"
    assert not public.exists(old)
    assert not (Path(settings.MEDIA_ROOT) / old).exists()


@pytest.mark.parametrize(
    "page",
    [
        "/admin/fulfillment/invoice/",
        "/admin/fulfillment/invoice/{invoice}/change/",
        "/admin/fulfillment/shipment/",
        "/admin/fulfillment/shipment/{shipment}/change/",
        "/admin/shop/catalogjob/",
        "/admin/shop/catalogjob/{job}/change/",
    ],
)
def test_the_admin_links_private_files_to_the_views_that_check_access(
    page, shipped, catalog_job, admin_client
):
    """The admin showed a private file as Django does any file, a link to its storage's
    URL, which names the file and leads nowhere (the private storage has no public URL)."""
    ids = {
        "invoice": shipped.invoice.pk,
        "shipment": shipped.shipment.pk,
        "job": catalog_job.pk,
    }
    html = admin_client.get(page.format(**ids)).content.decode()

    assert settings.STORAGES["private"]["OPTIONS"]["base_url"] not in html
    for name in (shipped.invoice.file.name, shipped.shipment.label.name, catalog_job.file.name):
        assert name not in html
    views = {
        "invoice": f'href="/files/invoices/{ids["invoice"]}"',
        "shipment": f'href="/files/labels/{ids["shipment"]}"',
        "catalogjob": f'href="/files/imports/{ids["job"]}"',
    }
    assert views[page.split("/")[3]] in html
