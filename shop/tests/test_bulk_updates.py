"""Bulk price updates and the warehouse stock sync, run as bulk catalog jobs."""

import importlib
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.utils import timezone

from orders.models import Order, Step
from orders.services.cleanup import records_cleanup
from shop.imports import (
    CatalogJobInvalid,
    catalog_job_create,
    catalog_job_error_report,
    catalog_job_run,
)
from shop.models import CatalogJob, Product
from shop.prices import price_scaled
from shop.stock import stock_feed_save, stock_pending_units
from tests.factories import order_place, product_create, run_pipeline

# A private file's random name (kit/files.py), never the uploader's or the job's id.
PRIVATE_NAME = re.compile(r"imports/[0-9a-f]{32}\.csv")

pytestmark = pytest.mark.django_db


def job_with_file(kind: str, content: str, **fields) -> CatalogJob:
    job = CatalogJob(kind=kind, **fields)
    job.file.save("feed.csv", ContentFile(content.encode()))
    return job


def prices_of(*skus: str) -> list[int]:
    return [Product.objects.get(sku=sku).price_cents for sku in skus]


def test_a_price_csv_sets_known_skus_and_rejects_unknown_skus_and_bad_prices():
    product_create(sku="P-1", price_cents=1000)
    product_create(sku="P-2", price_cents=2000)
    placed = order_place((Product.objects.get(sku="P-1"), 1)).order
    csv = "sku,price_cents\nP-1,1200\nNOPE,500\nP-2,-3\nP-2,2100\n"

    job = catalog_job_run(job_id=job_with_file("prices", csv).pk)

    assert (job.status, job.rows_applied, job.rows_rejected) == ("done", 2, 2)
    assert prices_of("P-1", "P-2") == [1200, 2100]
    assert list(catalog_job_error_report(job))[1:] == [
        ["2", "NOPE", "unknown SKU"],
        ["3", "P-2", "price_cents must be a whole number from 0 to 2000000000, got '-3'"],
    ]
    assert placed.lines.get().unit_price_cents == 1000  # sold at the old price


def test_a_percentage_update_changes_only_the_prefixed_skus_rounding_half_up():
    product_create(sku="MUG-1", price_cents=1005)
    product_create(sku="MUG-2", price_cents=999)
    product_create(sku="TEE-1", price_cents=2000)
    job = CatalogJob.objects.create(kind="prices", percent=Decimal("-10"), sku_prefix="MUG-")

    job = catalog_job_run(job_id=job.pk)

    assert (job.status, job.rows_total, job.rows_done, job.rows_applied) == ("done", 2, 2, 2)
    assert prices_of("MUG-1", "MUG-2", "TEE-1") == [905, 899, 2000]  # 904.5 -> 905, 899.1 -> 899


def test_a_percentage_update_killed_half_way_resumes_without_changing_a_price_twice(monkeypatch):
    monkeypatch.setattr("shop.imports.BATCH", 2)
    products = [product_create(sku=f"R-{n}", price_cents=1000) for n in range(5)]
    job = CatalogJob.objects.create(kind="prices", percent=Decimal("50"))
    # As if the worker died after committing the first batch of two.
    Product.objects.filter(pk__in=[p.pk for p in products[:2]]).update(price_cents=1500)
    CatalogJob.objects.filter(pk=job.pk).update(
        status="running", cursor=products[1].pk, rows_done=2, rows_applied=2
    )

    job = catalog_job_run(job_id=job.pk)

    assert prices_of(*(p.sku for p in products)) == [1500] * 5
    assert (job.rows_total, job.rows_done, job.rows_applied) == (5, 5, 5)


def test_a_percentage_that_would_overflow_a_price_rejects_that_product_only():
    product_create(sku="BIG", price_cents=1_900_000_000)
    product_create(sku="SMALL", price_cents=100)
    job = CatalogJob.objects.create(kind="prices", percent=Decimal("20"))

    job = catalog_job_run(job_id=job.pk)

    assert prices_of("BIG", "SMALL") == [1_900_000_000, 120]
    assert [r.reason for r in job.rejections.all()] == [
        "the new price 2280000000 would be above 2000000000 cents"
    ]


@pytest.mark.parametrize(
    ("cents", "percent", "expected"),
    [(1000, "7.5", 1075), (1, "50", 2), (3, "-50", 2), (999, "-90", 100), (0, "300", 0)],
)
def test_price_scaling_rounds_half_up_to_a_cent(cents, percent, expected):
    assert price_scaled(cents=cents, percent=Decimal(percent)) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Give either a CSV file (sku, price_cents) or a percentage."),
        (("--percent", "abc"), "--percent must be a number such as -10 or 7.5, got 'abc'"),
        (("--percent", "1.005"), "--percent takes at most two decimals, got '1.005'"),
        (("--percent", "-95"), "The percentage must be from -90 to 300."),
        (("--sku-prefix", "X"), "Give either a CSV file (sku, price_cents) or a percentage."),
    ],
)
def test_update_prices_command_explains_bad_arguments(args, message):
    with pytest.raises(CommandError) as refused:
        call_command("update_prices", *args)

    assert message in str(refused.value)
    assert CatalogJob.objects.count() == 0


def test_update_prices_command_applies_a_percentage_inline(capsys):
    product_create(sku="C-1", price_cents=1000)

    call_command("update_prices", "--percent", "12.5", "--inline")

    job = CatalogJob.objects.get()
    assert prices_of("C-1") == [1125]
    assert f"price update {job.pk} done: 1 applied, 0 rejected of 1 rows" in capsys.readouterr().out


def test_an_operator_starts_a_percentage_update_in_the_admin(
    admin_client, django_capture_on_commit_callbacks
):
    form = {"kind": "prices", "percent": "5", "sku_prefix": "", "requested_by": ""}

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post("/admin/shop/catalogjob/add/", form)
    refused = admin_client.post("/admin/shop/catalogjob/add/", {**form, "percent": "-99"})

    assert response.status_code == 302
    assert len(callbacks) == 1
    assert CatalogJob.objects.get().percent == Decimal("5")
    assert refused.status_code == 200
    assert "The percentage must be from -90 to 300." in refused.content.decode()
    assert CatalogJob.objects.count() == 1


# --- stock sync ------------------------------------------------------------------------------


def test_stock_sync_keeps_back_units_of_orders_the_warehouse_had_not_been_told_of():
    mug = product_create(sku="MUG", stock=50)
    tee = product_create(sku="TEE", stock=50)
    counted = timezone.now()
    told = order_place((mug, 4)).order  # the ERP took it before the count: off the shelf
    Order.objects.filter(pk=told.pk).update(erp_acknowledged_at=counted - timedelta(minutes=1))
    late = order_place((mug, 3)).order  # the ERP took it after the count: on the shelf, but sold
    Order.objects.filter(pk=late.pk).update(erp_acknowledged_at=counted + timedelta(minutes=1))
    order_place((mug, 2), (tee, 1))  # not synced yet
    released = order_place((tee, 5)).order
    Order.objects.filter(pk=released.pk).update(stock_state="released")
    feed = "sku,on_hand\nMUG,40\nTEE,30\nGONE,3\nTEE,x\n"

    job = catalog_job_run(job_id=job_with_file("stock", feed, as_of=counted).pk)

    assert {p.sku: p.stock for p in Product.objects.all()} == {"MUG": 40 - 3 - 2, "TEE": 30 - 1}
    assert list(catalog_job_error_report(job))[1:] == [
        ["3", "GONE", "unknown SKU"],
        ["4", "TEE", "on_hand must be a whole number from 0 to 2000000000, got 'x'"],
    ]


def test_stock_sync_after_the_cleanup_does_not_take_completed_orders_off_again(sandbox):
    """Issue 16, finding 1: the cleanup deleted the succeeded erp_sync steps of completed
    orders, and the sync took an order with no such step for one the ERP had not been
    told of, so every sync subtracted lifetime sales again."""
    mug = product_create(sku="MUG", stock=100)
    sandbox.post("/erp/stock", json={"levels": {"MUG": 30}}).raise_for_status()
    order = order_place((mug, 7)).order
    run_pipeline(order)  # the ERP takes 7 off its 30
    catalog_job_run(job_id=CatalogJob.objects.create(kind="stock").pk)
    before = Product.objects.get(sku="MUG").stock

    records_cleanup(now=timezone.now() + timedelta(days=settings.STEP_RETENTION_DAYS + 1))
    catalog_job_run(job_id=CatalogJob.objects.create(kind="stock").pk)

    assert Order.objects.get(pk=order.pk).status == Order.Status.COMPLETED
    assert not Step.objects.filter(order=order, name="erp_sync").exists()
    assert (before, Product.objects.get(sku="MUG").stock) == (23, 23)


def test_stock_sync_with_the_erp_clock_ahead_keeps_back_an_order_it_took_after_counting(sandbox):
    """Issue 16, finding 1: the sync compared our clock (when our step finished) with the
    ERP's (when it counted); with the ERP ten minutes ahead, an order it took just after
    counting looked told before it, and its units were sold twice."""
    sandbox.post("/control", json={"erp_clock_offset_s": 600}).raise_for_status()
    mug = product_create(sku="MUG", stock=100)
    sandbox.post("/erp/stock", json={"levels": {"MUG": 30}}).raise_for_status()
    job = CatalogJob.objects.create(kind="stock")
    stock_feed_save(job=job)  # the ERP counts 30, at its time
    late = order_place((mug, 4)).order
    run_pipeline(late)  # the ERP takes it after counting: its count still holds the 4

    catalog_job_run(job_id=job.pk)

    assert Order.objects.get(pk=late.pk).erp_acknowledged_at > job.as_of
    assert Product.objects.get(sku="MUG").stock == 30 - 4


def test_stock_sync_never_sets_a_negative_stock():
    mug = product_create(sku="MUG", stock=10)
    order_place((mug, 8))

    catalog_job_run(job_id=job_with_file("stock", "sku,on_hand\nMUG,5\n", as_of=timezone.now()).pk)

    assert Product.objects.get(sku="MUG").stock == 0


def test_stock_sync_from_the_erp_feed_counts_orders_the_erp_has_taken(sandbox):
    mug = product_create(sku="MUG", stock=100)
    sandbox.post("/erp/stock", json={"levels": {"MUG": 30}}).raise_for_status()
    synced = order_place((mug, 4)).order
    run_pipeline(synced)  # the ERP takes 4 off its 30
    order_place((mug, 2))  # the ERP does not know this one yet

    job = catalog_job_run(job_id=CatalogJob.objects.create(kind="stock").pk)

    assert sandbox.get("/erp/stock").json()["items"] == [{"sku": "MUG", "on_hand": 26}]
    assert (job.status, job.rows_applied, bool(PRIVATE_NAME.fullmatch(job.file.name))) == (
        "done",
        1,
        True,
    )
    assert Product.objects.get(sku="MUG").stock == 26 - 2


def test_an_empty_erp_feed_finishes_the_sync_with_nothing_changed(sandbox):
    product_create(sku="MUG", stock=7)

    job = catalog_job_run(job_id=CatalogJob.objects.create(kind="stock").pk)

    assert (job.status, job.message) == ("done", "The ERP's feed listed no SKUs; nothing to sync.")
    assert Product.objects.get(sku="MUG").stock == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Give either a CSV file (sku, on_hand) or --from-erp."),
        (("x.csv", "--from-erp"), "Give either a CSV file (sku, on_hand) or --from-erp."),
        (("--from-erp", "--as-of", "2026-01-01"), "--as-of is for a file"),
        (("missing.csv",), "No such file: missing.csv"),
    ],
)
def test_sync_stock_command_explains_bad_arguments(args, message):
    with pytest.raises(CommandError) as refused:
        call_command("sync_stock", *args)

    assert message in str(refused.value)


def test_sync_stock_command_refuses_a_bad_count_time(tmp_path):
    feed = tmp_path / "feed.csv"
    feed.write_text("sku,on_hand\nMUG,1\n")

    with pytest.raises(CommandError) as refused:
        call_command("sync_stock", str(feed), "--as-of", "yesterday")

    assert str(refused.value) == (
        "--as-of: expected an ISO-8601 date or date-time like 2026-05-01, got 'yesterday'"
    )


def test_the_hourly_erp_stock_sync_starts_one_job_per_tick(
    django_capture_on_commit_callbacks, shared_state_in_test_redis
):
    from shop.tasks import sync_stock_from_erp

    with django_capture_on_commit_callbacks() as callbacks:
        first = sync_stock_from_erp.apply().get()
        second = sync_stock_from_erp.apply().get()

    assert CatalogJob.objects.get().pk == first
    assert second is None  # the same tick, already taken
    assert len(callbacks) == 1


def test_a_stock_sync_whose_erp_feed_stays_down_is_refused_with_the_reason(settings):
    import partners
    from shop.tasks import run_catalog_job

    settings.PARTNERS = {
        **settings.PARTNERS,
        "erp": {"base_url": "http://127.0.0.1:9/erp", "timeout_s": 0.5},
    }
    partners._clients.clear()
    job = CatalogJob.objects.create(kind="stock", requested_by="ops@example.com")

    # Run eagerly, each retry runs at once, without its countdown.
    result = run_catalog_job.apply(args=(job.pk,))

    assert result.get() == "rejected"
    job.refresh_from_db()
    assert job.message.startswith("erp stock feed unavailable: ")
    assert job.message.endswith("(tried 4 times)")
    partners._clients.clear()


def test_the_admin_refuses_a_count_time_for_a_sync_from_the_erp_feed(admin_client):
    form = {"kind": "stock", "as_of_0": "2026-11-23", "as_of_1": "06:00", "requested_by": ""}

    refused = admin_client.post("/admin/shop/catalogjob/add/", form)
    started = admin_client.post(
        "/admin/shop/catalogjob/add/", {**form, "as_of_0": "", "as_of_1": ""}
    )

    assert refused.status_code == 200
    assert "The ERP&#x27;s feed says when it counted; a count time is for a file." in (
        refused.content.decode()
    )
    assert started.status_code == 302
    assert CatalogJob.objects.get().kind == "stock"


def test_a_stock_count_from_a_file_given_no_count_time_was_counted_when_the_job_was_made(
    django_capture_on_commit_callbacks,
):
    before = timezone.now()

    with django_capture_on_commit_callbacks() as callbacks:
        job = catalog_job_create(
            kind="stock", file=ContentFile(b"sku,on_hand\nMUG,1\n", name="count.csv")
        )

    assert before <= job.as_of <= timezone.now()
    assert PRIVATE_NAME.fullmatch(job.file.name)
    assert len(callbacks) == 1  # queued on the bulk queue after commit


def test_a_job_with_options_its_kind_does_not_take_is_not_created():
    with pytest.raises(CatalogJobInvalid) as refused:
        catalog_job_create(kind="catalog", percent=Decimal("5"))

    assert refused.value.errors == {
        "file": "A catalog import needs a CSV file.",
        "percent": "Only a price update takes a percentage.",
    }
    assert CatalogJob.objects.count() == 0


def test_orders_the_erp_took_before_the_acknowledgement_time_was_kept_get_one_in_the_past():
    """The migration that adds erp_acknowledged_at: an order the ERP has, with or without
    its sync step (the cleanup may have deleted it), counts as taken before any count to
    come; one the ERP has not taken stays pending."""
    from django.apps import apps

    fill = importlib.import_module("orders.migrations.0013_erp_acknowledged_at")
    mug = product_create(sku="MUG", stock=50)
    stepped, cleaned, waiting = (order_place((mug, n)).order for n in (1, 2, 4))
    finished = timezone.now() - timedelta(days=200)
    Order.objects.filter(pk__in=[stepped.pk, cleaned.pk]).update(erp_reference="ERP-1")
    Step.objects.filter(order=stepped, name="erp_sync").update(
        status="succeeded", finished_at=finished
    )
    Step.objects.filter(order=cleaned).delete()

    fill.acknowledged_at_fill(apps, None)

    acknowledged = dict(Order.objects.values_list("pk", "erp_acknowledged_at"))
    assert acknowledged[stepped.pk] == finished
    assert acknowledged[cleaned.pk] == Order.objects.get(pk=cleaned.pk).updated_at
    assert acknowledged[waiting.pk] is None
    assert stock_pending_units(product_ids=[mug.pk], as_of=timezone.now()) == {mug.pk: 4}
