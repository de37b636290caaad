"""No database transaction is held across a partner call (issue 16): a call that waits
seconds on a partner while holding row locks (or SQLite's one write lock) stalls every
checkout behind it. Outside production the partner client refuses such a call before it
sends anything, so a new one cannot creep in."""

import pytest
from django.db import transaction

import partners
from orders.services.payment_report import payments_reconcile
from partners import PartnerCallInTransaction

pytestmark = pytest.mark.django_db


def test_a_partner_call_from_inside_a_transaction_is_refused_before_it_is_sent(sandbox):
    with pytest.raises(PartnerCallInTransaction), transaction.atomic():
        partners.erp_sync(order_number="SF-LOCKED", lines=[], total_cents=1)

    assert sandbox.get("/ledger").json()["erp"]["calls"] == 0


def test_a_partner_call_outside_any_transaction_goes_through(sandbox):
    reference, _ = partners.erp_sync(order_number="SF-FREE", lines=[], total_cents=1)

    assert reference.startswith("ERP-")


def test_the_nightly_payment_report_asks_the_gateway_outside_its_transaction(sandbox):
    """Finding 4: the report held its transaction (on SQLite, the database's one write
    lock) across the gateway's capture list."""
    partners.payment_capture(
        order_number="SF-GHOST", amount_cents=500, currency="EUR", payment_token="tok_visa"
    )

    [discrepancy] = payments_reconcile()

    assert (discrepancy.order_number, discrepancy.details) == ("SF-GHOST", "no such order")
