"""Date, time and duration options read the same way in every command (issue 12): one
parser, one error naming the option, and `--since` meaning "at or after" everywhere."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command

from orders.models import Order, OrderExport, Step
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db

MOMENT = "an ISO-8601 date or date-time like 2026-05-01"
SINCE = f"{MOMENT} or a duration like 30m, 2h or 7d back from now"
NOW = datetime(2026, 5, 2, 14, 30, tzinfo=UTC)


@pytest.fixture
def olga(django_user_model):
    user = django_user_model.objects.create_user(
        "olga", "olga@shop.example", "pw-123456", is_staff=True
    )
    user.user_permissions.add(Permission.objects.get(codename="view_order"))
    return user


@pytest.mark.parametrize(
    ("arguments", "option", "expected"),
    [
        (["sync_stock", "FILE", "--as-of", "yesterday"], "--as-of", MOMENT),
        (["export_orders", "--requested-by", "olga", "--until", "yesterday"], "--until", MOMENT),
        (["export_orders", "--requested-by", "olga", "--since", "yesterday"], "--since", SINCE),
        (["dead_letters", "list", "--since", "yesterday"], "--since", SINCE),
        (["dead_letters", "list", "--since", "2h ago"], "--since", SINCE),
    ],
)
def test_a_malformed_date_in_each_command_is_refused_the_same_way_naming_the_option(
    arguments, option, expected, olga, tmp_path
):
    feed = tmp_path / "feed.csv"
    feed.write_text("sku,on_hand\nMUG,1\n")
    text = arguments[-1]

    with pytest.raises(CommandError) as refused:
        call_command(*[str(feed) if a == "FILE" else a for a in arguments])

    assert str(refused.value) == f"{option}: expected {expected}, got {text!r}"


def order_failed_at(moment: datetime) -> Order:
    """An order created at `moment` whose analytics step became a dead letter then."""
    order = order_place((product_create(), 1)).order
    Order.objects.filter(pk=order.pk).update(created_at=moment)
    Step.objects.filter(order=order, name="analytics_track").update(
        status=Step.Status.FAILED, finished_at=moment, last_error="boom"
    )
    return order


@pytest.mark.parametrize(
    "since", ["2026-05-02", "2026-05-02T12:30", "2026-05-02T14:30+02:00", "2h"]
)
def test_since_means_at_or_after_the_same_moment_in_the_dead_letters_and_export_commands(
    since, olga, capsys
):
    order_failed_at(datetime(2026, 5, 1, 12, 30, tzinfo=UTC))
    recent = order_failed_at(datetime(2026, 5, 2, 12, 30, tzinfo=UTC))

    with time_machine.travel(NOW, tick=False):
        call_command("dead_letters", "list", "--since", since)
        listed = capsys.readouterr().out
        call_command("export_orders", "--requested-by", "olga", "--since", since, "--inline")

    export = OrderExport.objects.get()
    assert listed.splitlines()[0].startswith(f"{recent.number}  analytics")
    assert listed.endswith("\n1 dead letters\n")
    assert (export.status, export.rows_done) == ("done", 1)
    with export.file.open("rb") as file:
        assert [line.split(",")[0] for line in file.read().decode().splitlines()[1:]] == [
            recent.number
        ]
