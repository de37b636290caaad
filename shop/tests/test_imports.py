import csv
from datetime import timedelta

import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db.models import F
from django.db.models.functions import Now

import shop.imports
from shop.imports import catalog_job_error_report, catalog_job_run
from shop.models import CatalogJob, Product, ProductImage

pytestmark = pytest.mark.django_db

GOOD = "sku,name,price_cents,stock,image_url\nA-1,Mug,1490,10,https://img.example/a.png\nA-2,Tee,2900,5,\n"
MIXED = (
    "sku,name,price_cents,stock\n"
    "B-1,Cap,2400,3\n"
    ",No sku,100,1\n"
    "B-2,Bag,-5,1\n"
    "B-3,Pen,3900,lots\n"
    "B-1,Cap (new name),2500,4\n"
)


def job_for(content: bytes | str) -> CatalogJob:
    job = CatalogJob()
    job.file.save(
        "catalog.csv", ContentFile(content.encode() if isinstance(content, str) else content)
    )
    return job


def test_a_good_file_upserts_every_product_and_queues_its_images():
    job = catalog_job_run(job_id=job_for(GOOD).pk)

    assert (job.status, job.rows_total, job.rows_applied, job.rows_rejected) == ("done", 2, 2, 0)
    assert list(
        Product.objects.order_by("sku").values_list("sku", "name", "price_cents", "stock")
    ) == [
        ("A-1", "Mug", 1490, 10),
        ("A-2", "Tee", 2900, 5),
    ]
    assert list(ProductImage.objects.values_list("source_url", "status")) == [
        ("https://img.example/a.png", "pending")
    ]


def test_bad_rows_are_rejected_with_row_and_reason_and_the_good_ones_imported():
    job = catalog_job_run(job_id=job_for(MIXED).pk)

    assert (job.rows_applied, job.rows_rejected) == (2, 3)
    assert list(catalog_job_error_report(job)) == [
        ["row", "sku", "reason"],
        ["2", "", "sku must be 1 to 64 characters"],
        ["3", "B-2", "price_cents must be a whole number from 0 to 2000000000, got '-5'"],
        ["4", "B-3", "stock must be a whole number from 0 to 2000000000, got 'lots'"],
    ]
    assert Product.objects.get(sku="B-1").name == "Cap (new name)"  # the last row wins


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The file is empty."),
        (
            b"sku,title,price_cents,stock\nX,Y,1,1\n",
            "Wrong columns: missing name; unknown title. "
            "Expected sku, name, price_cents, stock and optionally description, image_url.",
        ),
        (b"sku,name,price_cents,stock\n", "The file has a header but no rows."),
        (b"sku,name,price_cents,stock\nX,Caf\xe9,1,1\n", "The file is not UTF-8 text (byte 32)."),
    ],
)
def test_a_malformed_file_is_rejected_before_any_row_is_written(content, message):
    job = catalog_job_run(job_id=job_for(content).pk)

    assert (job.status, job.message) == ("rejected", message)
    assert Product.objects.count() == 0


def test_an_import_killed_half_way_resumes_after_its_last_batch_without_duplicates(monkeypatch):
    monkeypatch.setattr("shop.imports.BATCH", 2)
    rows = "".join(f"C-{n},Item {n},{100 + n},1\n" for n in range(7))
    job = job_for("sku,name,price_cents,stock\n" + rows)
    # As if the worker died after committing two batches.
    CatalogJob.objects.filter(pk=job.pk).update(status="running", rows_done=4, rows_applied=4)
    Product.objects.bulk_create(
        Product(sku=f"C-{n}", name="stale", price_cents=1) for n in range(4)
    )

    job = catalog_job_run(job_id=job.pk)

    assert (job.status, job.rows_done, job.rows_applied) == ("done", 7, 7)
    assert Product.objects.filter(sku__startswith="C-").count() == 7
    assert list(
        Product.objects.filter(name="stale").values_list("sku", flat=True).order_by("sku")
    ) == [
        "C-0",
        "C-1",
        "C-2",
        "C-3",
    ]


# A holder on another machine: no process here can probe it, only its lease tells.
ELSEWHERE = "0123456789ab/4242/feedfacecafe"


def test_a_job_held_by_a_live_run_on_another_machine_is_not_run_twice_and_resumes_after_it_lapses():
    job = job_for(GOOD)
    leased = CatalogJob.objects.filter(pk=job.pk)
    leased.update(
        status="running",
        lease_holder=ELSEWHERE,
        lease_token=1,
        lease_expires_at=Now() + timedelta(seconds=30),
    )

    while_it_lives = catalog_job_run(job_id=job.pk)
    assert (while_it_lives.status, while_it_lives.rows_done, Product.objects.count()) == (
        "running",
        0,
        0,
    )

    leased.update(lease_expires_at=Now() - timedelta(seconds=1))  # its worker died
    job = catalog_job_run(job_id=job.pk)

    assert (job.status, job.rows_applied, job.lease_token, job.lease_expires_at) == (
        "done",
        2,
        2,
        None,
    )
    assert Product.objects.count() == 2


def test_a_stale_runs_next_batch_is_fenced_off_once_another_run_took_the_job(monkeypatch):
    monkeypatch.setattr("shop.imports.BATCH", 2)
    rows = "".join(f"D-{n},Item {n},{100 + n},1\n" for n in range(4))
    job = job_for("sku,name,price_cents,stock\n" + rows)
    real_rows = shop.imports.csv_rows

    def rows_then_lose_the_lease(opener, *, skip):
        for number, row in enumerate(real_rows(opener, skip=skip)):
            if number == 2:  # between batches the run stalls past its lease; another takes it
                CatalogJob.objects.filter(pk=job.pk).update(
                    lease_holder=ELSEWHERE,
                    lease_token=F("lease_token") + 1,
                    lease_expires_at=Now() + timedelta(seconds=30),
                )
            yield row

    monkeypatch.setattr(shop.imports, "csv_rows", rows_then_lose_the_lease)
    catalog_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert (job.status, job.rows_done, job.lease_token, job.lease_holder) == (
        "running",
        2,
        2,
        ELSEWHERE,
    )
    assert sorted(Product.objects.values_list("sku", flat=True)) == ["D-0", "D-1"]


def test_import_command_refuses_a_malformed_file_and_imports_a_good_one(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,name\n")
    good = tmp_path / "good.csv"
    good.write_text(GOOD)

    with pytest.raises(CommandError, match="missing price_cents, stock"):
        call_command("import_products", str(bad))
    call_command("import_products", str(good), "--inline")

    assert "done: 2 imported, 0 rejected of 2 rows" in capsys.readouterr().out
    assert CatalogJob.objects.count() == 1


def test_an_operator_uploads_in_the_admin_and_downloads_the_error_report(
    admin_client, django_capture_on_commit_callbacks
):
    upload = ContentFile(MIXED.encode(), name="catalog.csv")

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            "/admin/shop/catalogjob/add/", {"kind": "catalog", "file": upload, "requested_by": ""}
        )
    job = CatalogJob.objects.get()
    catalog_job_run(job_id=job.pk)  # what the dispatched task does on the bulk queue
    listing = admin_client.get("/admin/shop/catalogjob/")
    report = admin_client.get(f"/admin/shop/catalogjob/{job.pk}/errors.csv")

    assert response.status_code == 302
    assert len(callbacks) == 1
    assert '<progress value="5" max="5"></progress> 5 / 5' in listing.content.decode()
    assert report["Content-Type"] == "text/csv"
    rows = list(csv.reader(b"".join(report.streaming_content).decode().splitlines()))
    assert rows == list(catalog_job_error_report(job))
    assert len(rows) == 4


def test_the_requester_gets_one_summary_email_with_the_error_report_link():
    job = job_for(MIXED)
    CatalogJob.objects.filter(pk=job.pk).update(requested_by="ops@example.com")

    catalog_job_run(job_id=job.pk)
    catalog_job_run(job_id=job.pk)

    [message] = mail.outbox
    assert message.to == ["ops@example.com"]
    assert message.subject == f"Catalog import {job.pk}: done"
    assert message.body == (
        f"Your catalog import {job.pk} is done: 2 rows imported, 3 rejected, of 5.\n"
        f"\nError report (row, SKU, reason): http://127.0.0.1:8000/admin/shop/catalogjob/{job.pk}/errors.csv\n"
    )


def test_the_pages_of_import_jobs_linked_from_sent_emails_redirect_to_catalog_jobs(admin_client):
    job = job_for(MIXED)

    old_report = admin_client.get(f"/admin/shop/importjob/{job.pk}/errors.csv")
    old_list = admin_client.get("/admin/shop/importjob/?status__exact=done")

    assert (old_report.status_code, old_report["Location"]) == (
        301,
        f"/admin/shop/catalogjob/{job.pk}/errors.csv",
    )
    assert old_list["Location"] == "/admin/shop/catalogjob/?status__exact=done"


def test_an_uploaded_file_in_a_storage_without_paths_like_s3_is_imported(
    pathless_private_storage,
):
    job = job_for(GOOD)

    catalog_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert (job.status, job.rows_total, job.rows_applied, job.rows_rejected) == ("done", 2, 2, 0)
    assert sorted(Product.objects.values_list("sku", "name", "price_cents", "stock")) == [
        ("A-1", "Mug", 1490, 10),
        ("A-2", "Tee", 2900, 5),
    ]
