"""The outage drill of issue 16 on the Procfile's workers, at a thirtieth of real time: the
payment gateway answers 503 for "fifteen minutes" (30 s) while orders keep coming, then
recovers. The retry delays, the payment step's 15-minute budget, the breaker's cool-down
and window are scaled alike, so an order placed as the outage starts meets it with
production's odds. bench/outage.py runs the same drill at real time."""

import pytest

from harness.outage import OUTAGE_S, drill_env, drill_run
from harness.rig import Rig
from orders.models import Order, Step
from tests.factories import product_create
from tests.workers import session_database_url

pytestmark = pytest.mark.system

SCALE = 1 / 30
# One order every 15 s at real time.
PACE_S = 15 * SCALE


@pytest.fixture
def rig(transactional_db, sandbox, sandbox_url, tmp_path):
    rig = Rig(
        tmp_path=tmp_path,
        database_url=session_database_url(),
        sandbox_url=sandbox_url,
        **drill_env(scale=SCALE),
    )
    yield rig
    rig.stop()


def test_a_fifteen_minute_payment_outage_loses_no_order_and_charges_none_twice(rig, sandbox):
    product = product_create(stock=10_000)
    rig.start(copies=0)
    rig.procfile_start("worker_high", "worker_medium", "worker_low")

    numbers, figures = drill_run(
        rig, sandbox, sku=product.sku, outage_s=OUTAGE_S * SCALE, pace_s=PACE_S, settle_s=300
    )

    print(figures.as_json())
    # One every PACE_S through the outage, each checkout taking its own time as well.
    assert figures.placed == len(numbers) >= 20
    statuses = dict(Order.objects.filter(number__in=numbers).values_list("number", "status"))
    assert statuses == {number: "completed" for number in numbers}
    assert Step.objects.filter(order__number__in=numbers, status="failed").count() == 0
    assert (figures.charged_twice, figures.uncharged) == (0, 0)
    # The breaker opened, probed through the outage, and let one call through per cool-down.
    assert figures.probes >= 10
    assert figures.most_probes_in_a_cooldown == 1
