"""The stock sync against concurrent checkouts on PostgreSQL: no reservation is lost,
whichever of the two takes the product rows first."""

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

import shop.stock
from orders.models import OrderLine
from shop.imports import catalog_job_run
from shop.models import CatalogJob, Product
from tests.factories import order_place, product_create

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def needs_postgres():
    assert connection.vendor == "postgresql", "run with DATABASE_URL on PostgreSQL (make test does)"


def stock_job(on_hand: dict[str, int]) -> CatalogJob:
    job = CatalogJob(kind="stock", as_of=timezone.now())
    rows = "".join(f"{sku},{units}\n" for sku, units in on_hand.items())
    job.file.save("feed.csv", ContentFile(("sku,on_hand\n" + rows).encode()))
    return job


def in_thread(work) -> threading.Thread:
    def run():
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_until_a_session_waits_for_a_lock() -> None:
    with connection.cursor() as cursor:
        for _ in range(1000):
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
            threading.Event().wait(0.01)
    raise AssertionError("no session ever waited for the lock")


def test_a_reservation_committed_while_the_sync_waits_for_it_is_kept_back():
    mug = product_create(sku="MUG", stock=50)
    reserved, commit = threading.Event(), threading.Event()

    def checkout():
        with transaction.atomic():
            order_place((mug, 3))
            reserved.set()
            commit.wait(30)

    customer = in_thread(checkout)
    reserved.wait(30)
    sync = in_thread(lambda: catalog_job_run(job_id=stock_job({"MUG": 40}).pk))
    wait_until_a_session_waits_for_a_lock()  # the sync, on the product the checkout holds
    commit.set()
    customer.join(30)
    sync.join(30)

    assert Product.objects.get(sku="MUG").stock == 40 - 3


def test_a_checkout_waiting_while_the_sync_holds_the_product_takes_from_the_new_figure(
    monkeypatch,
):
    mug = product_create(sku="MUG", stock=50)
    locked, go_on = threading.Event(), threading.Event()
    count_pending = shop.stock.stock_pending_units

    def paused(**kwargs):
        locked.set()  # the sync holds the product rows now
        go_on.wait(30)
        return count_pending(**kwargs)

    monkeypatch.setattr(shop.stock, "stock_pending_units", paused)
    sync = in_thread(lambda: catalog_job_run(job_id=stock_job({"MUG": 40}).pk))
    locked.wait(30)
    customer = in_thread(lambda: order_place((mug, 3)))
    wait_until_a_session_waits_for_a_lock()  # the checkout, on the product the sync holds
    go_on.set()
    sync.join(30)
    customer.join(30)

    assert OrderLine.objects.get().quantity == 3
    assert Product.objects.get(sku="MUG").stock == 40 - 3


def test_syncs_racing_many_checkouts_lose_no_reservation():
    products = [product_create(sku=f"S-{n}", stock=10_000) for n in range(3)]
    on_hand = {p.sku: 1000 for p in products}
    rng = random.Random(7)
    baskets = [[(rng.choice(products), rng.randint(1, 3))] for _ in range(120)]

    def customer(basket):
        try:
            order_place(*basket)
        finally:
            connection.close()

    with ThreadPoolExecutor(6) as pool:
        placed = pool.map(customer, baskets)
        for _ in range(6):
            catalog_job_run(job_id=stock_job(on_hand).pk)
        list(placed)

    # Every order is still unknown to the warehouse: each one's units must be kept back,
    # whether it reserved before, during or after any of the syncs.
    for product in products:
        ordered = sum(q for basket in baskets for p, q in basket if p.pk == product.pk)
        assert Product.objects.get(pk=product.pk).stock == 1000 - ordered
