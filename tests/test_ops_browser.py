"""The admin as an operator sees it: Debian's Chromium, headless, driven by Playwright."""

import re

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from config.celery import app
from harness.browser import INSTALL_HINT, chromium_find
from orders.models import Step
from orders.tasks import payment_capture
from tests.factories import order_place, product_create

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOGIN = ("operator", "operator-secret")


@pytest.fixture
def page(live_server):
    chromium = chromium_find()
    if chromium is None:
        pytest.fail(INSTALL_HINT)  # never a silent skip: `make test` installs it
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(base_url=live_server.url)
        page.set_default_timeout(10_000)
        yield page
        browser.close()


@pytest.fixture
def order_with_a_dead_letter(sandbox, settings):
    """A paid order whose analytics step failed for good; its payment message still queued."""
    settings.ALERT_DEAD_LETTERS = 0
    app.control.purge()
    User.objects.create_superuser(LOGIN[0], "operator@shopflow.example", LOGIN[1])
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    Step.objects.filter(order=order, name="analytics_track").update(
        status=Step.Status.FAILED,
        attempts=4,
        last_error="PartnerUnavailable: analytics answered 503",
        finished_at=timezone.now(),
    )
    yield order
    app.control.purge()


def test_an_operator_logs_in_and_reads_the_dashboard_and_an_orders_timeline(
    order_with_a_dead_letter, page
):
    order = order_with_a_dead_letter

    page.goto("/admin/")
    page.fill("#id_username", LOGIN[0])
    page.fill("#id_password", LOGIN[1])
    page.click("input[type=submit]")
    page.click("text=Operations dashboard")

    expect(page).to_have_url(f"{page.url.split('/admin/')[0]}/admin/operations/")
    expect(page.locator("h1")).to_have_text("Operations")
    queues = page.locator("#ops-queues tbody tr")
    rows = [row.split() for row in queues.all_inner_texts()]
    # The oldest message's age counts the seconds the page took to load: any whole number.
    assert all(re.fullmatch(r"\d+s", row[2]) for row in rows), rows
    assert [[row[0], row[1], *row[3:]] for row in rows] == [
        # The payment message no worker took (the step ran in the test), and the steps its
        # success published from the step records: the confirmation email on high, the
        # ERP sync and the invoice on medium, analytics on low (its step failed since).
        ["high", "2", "30s", "–", "1", "0"],
        ["medium", "2", "300s", "–", "0", "0"],
        ["low", "1", "1800s", "–", "0", "1"],
        ["bulk", "0", "3600s", "–", "0", "0"],
        ["control", "0", "–", "–", "0", "0"],
        ["quarantine", "0", "–", "–", "0", "0"],
    ]
    total = page.locator("#ops-dead-letters tr").first.locator("td")
    expect(total).to_have_text("1")
    # Above ALERT_DEAD_LETTERS (0 here): shown in the alert red.
    assert total.evaluate("cell => getComputedStyle(cell).color") == "rgb(186, 33, 33)"
    expect(page.locator("#ops-activity svg rect.orders")).to_have_count(24)
    assert page.locator("#ops-activity svg rect.orders").last.locator("title").text_content()
    assert page.locator("#ops-activity svg rect.orders").last.get_attribute("height") != "0"

    page.click("#ops-dead-letters >> text=analytics")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list tbody tr th.field-order_link")).to_have_text(order.number)

    page.goto(f"/admin/orders/order/{order.pk}/change/")
    timeline = page.locator("#steps-group")
    expect(timeline.locator("h2")).to_have_text("Pipeline timeline")
    rows = timeline.locator("tbody tr.form-row")
    assert [
        (row.locator("td.field-name").inner_text(), row.locator("td.field-status").inner_text())
        for row in rows.all()
    ] == [
        ("payment_capture", "succeeded"),
        ("confirmation_email_send", "queued"),
        ("erp_sync", "queued"),
        ("invoice_render", "queued"),
        ("label_purchase", "pending"),  # waits for the ERP sync
        ("analytics_track", "failed"),
    ]
    expect(rows.last.locator("td.field-last_error")).to_have_text(
        "PartnerUnavailable: analytics answered 503"
    )
