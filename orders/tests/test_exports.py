import csv
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core import mail
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db.models.functions import Now
from django.utils import timezone

from notifications.models import OutboxEmail
from orders.models import Order, OrderExport
from orders.services import exports
from orders.services.cleanup import records_cleanup
from orders.services.exports import (
    COLUMNS,
    ExportInvalid,
    export_filters_clean,
    order_export_create,
    order_export_run,
)
from orders.tasks import export_orders
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db


def staff_user(django_user_model, username: str, email: str = ""):
    user = django_user_model.objects.create_user(
        username, email or f"{username}@shop.example", "pw-123456", is_staff=True
    )
    user.user_permissions.add(Permission.objects.get(codename="view_order"))
    return user


@pytest.fixture
def olga(django_user_model):
    return staff_user(django_user_model, "olga")


def order_on(
    day: int, *items, status: str = "paid", channel: str = "api", email: str = ""
) -> Order:
    order = order_place(*items).order
    Order.objects.filter(pk=order.pk).update(
        created_at=datetime(2026, 5, day, 12, 30, tzinfo=UTC),
        status=status,
        channel=channel,
        email=email or order.email,
    )
    order.refresh_from_db()
    return order


def csv_rows(export: OrderExport) -> list[list[str]]:
    with export.file.open("rb") as file:
        return list(csv.reader(file.read().decode().splitlines()))


def exported(requester, filters: dict) -> OrderExport:
    export = order_export_create(requester=requester, filters=filters, queue=False)
    return order_export_run(export_id=export.pk)


def test_an_export_of_a_filter_holds_one_row_per_line_of_exactly_the_matching_orders(olga):
    mug = product_create(price_cents=1000, sku="MUG")
    tee = product_create(price_cents=2500, sku="TEE")
    both = order_on(1, (mug, 2), (tee, 1), channel="web")
    mug_only = order_on(2, (mug, 1), status="completed")
    order_on(2, (mug, 1), status="cancelled")  # another status
    order_on(2, (tee, 1))  # no MUG line
    order_on(3, (mug, 1))  # created on the exclusive end day

    export = exported(
        olga,
        {
            "status": ["paid", "completed"],
            "created_from": "2026-05-01",
            "created_to": "2026-05-03",
            "sku": "MUG",
        },
    )

    assert (export.status, export.rows_total, export.rows_done) == ("done", 2, 2)
    assert csv_rows(export) == [
        list(COLUMNS),
        [both.number, "2026-05-01T12:30:00+00:00", "paid", "web", "ada@example.com", "EUR",
         "4500", "MUG", "Product MUG", "2", "1000"],
        [both.number, "2026-05-01T12:30:00+00:00", "paid", "web", "ada@example.com", "EUR",
         "4500", "TEE", "Product TEE", "1", "2500"],
        [mug_only.number, "2026-05-02T12:30:00+00:00", "completed", "api", "ada@example.com",
         "EUR", "1000", "MUG", "Product MUG", "1", "1000"],
    ]  # fmt: skip


def test_a_selection_exports_only_its_ids_and_defuses_formula_text(olga):
    mug = product_create(price_cents=1000, sku="MUG")
    chosen = order_on(1, (mug, 1), email="=HYPERLINK(1)@example.com")
    order_on(1, (mug, 1))

    export = exported(olga, {"ids": [chosen.pk]})

    assert csv_rows(export)[1:] == [
        [chosen.number, "2026-05-01T12:30:00+00:00", "paid", "api", "'=HYPERLINK(1)@example.com",
         "EUR", "1000", "MUG", "Product MUG", "1", "1000"],
    ]  # fmt: skip


def test_bad_filters_are_refused_naming_each_field_and_reason():
    with pytest.raises(ExportInvalid) as refused:
        export_filters_clean(
            {
                "status": ["paid", "shipped"],
                "created_from": "2026-05-03",
                "created_to": "2026-05-01",
                "ids": [1, "2"],
                "colour": "red",
            }
        )

    assert refused.value.errors == {
        "colour": "unknown filter; expected one of ids, status, channel, created_from, "
        "created_to, email_contains, sku, search",
        "ids": "expected a non-empty list of order ids (positive whole numbers)",
        "status": "unknown value 'shipped'; expected placed, paid, completed, payment_failed, "
        "needs_attention, cancelled",
        "created_to": "must be after created_from",
    }


def test_the_task_run_twice_writes_one_file_and_sends_one_email(olga, private_root, settings):
    settings.EXPORT_LINK_TTL_HOURS = 24
    order_on(1, (product_create(), 1))
    export = order_export_create(requester=olga, filters={"status": "paid"}, queue=False)

    export_orders.apply(args=(export.pk,))
    export_orders.apply(args=(export.pk,))

    export.refresh_from_db()
    assert export.status == "done"
    assert export.expires_at == export.finished_at + timedelta(hours=24)
    assert [f"exports/{p.name}" for p in (private_root / "exports").iterdir()] == [export.file.name]
    assert len(csv_rows(export)) == 2
    [message] = mail.outbox
    assert message.to == ["olga@shop.example"]
    assert message.subject == f"Order export {export.pk} is ready"
    assert message.body == (
        f"Your order export {export.pk} is ready: 1 order (status paid).\n\n"
        f"Download it signed in as olga, until {export.expires_at:%Y-%m-%d %H:%M} UTC:\n"
        f"http://127.0.0.1:8000/exports/{export.pk}/orders.csv\n"
    )
    assert OutboxEmail.objects.filter(key=f"order-export:{export.pk}").count() == 1


class WorkerKilled(BaseException):
    """Stands for a SIGKILL: nothing in the run gets to handle it."""


def test_a_run_killed_half_way_resumes_after_its_last_batch_without_repeating_rows(
    olga, settings, monkeypatch
):
    settings.EXPORT_BATCH = 2
    product = product_create()
    orders = [order_on(1, (product, 1)) for _ in range(5)]
    export = order_export_create(requester=olga, filters={}, queue=False)
    real_rows = exports._order_rows

    def rows_until_the_third_batch(order):
        if order.pk == orders[4].pk:
            raise WorkerKilled
        return real_rows(order)

    monkeypatch.setattr(exports, "_order_rows", rows_until_the_third_batch)
    with pytest.raises(WorkerKilled):
        order_export_run(export_id=export.pk)
    export.refresh_from_db()
    assert (export.parts_done, export.rows_done) == (3, 4)  # the header and two batches
    storage, unrecorded = export.file.storage, export_part(export, 3)
    storage.save(unrecorded, ContentFile(b"half a batch,"))  # saved, never recorded
    monkeypatch.setattr(exports, "_order_rows", real_rows)

    order_export_run(export_id=export.pk)

    export.refresh_from_db()
    assert (export.status, export.rows_done, export.rows_total) == ("done", 5, 5)
    assert [row[0] for row in csv_rows(export)] == ["number", *(o.number for o in orders)]
    assert [storage.exists(export_part(export, n)) for n in range(5)] == [False] * 5
    assert len(mail.outbox) == 1


def test_a_stale_export_writers_write_is_fenced_off_and_the_live_writer_finishes_the_file(
    olga, settings, monkeypatch
):
    settings.EXPORT_BATCH = 1
    product = product_create()
    orders = [order_on(1, (product, 1)) for _ in range(3)]
    export = order_export_create(requester=olga, filters={}, queue=False)
    real_rows = exports._order_rows
    stalled = []

    def stall_then_lose_the_lease(order):
        if not stalled:  # the first writer stalls past its lease in its first batch...
            stalled.append(order.pk)
            OrderExport.objects.filter(pk=export.pk).update(
                lease_expires_at=Now() - timedelta(seconds=1)
            )
            order_export_run(export_id=export.pk)  # ...and another run takes it and finishes
        return real_rows(order)

    monkeypatch.setattr(exports, "_order_rows", stall_then_lose_the_lease)
    order_export_run(export_id=export.pk)  # the stale writer goes on after its stall

    export.refresh_from_db()
    assert (export.status, export.rows_done, export.lease_token) == ("done", 3, 2)
    assert [row[0] for row in csv_rows(export)] == ["number", *(o.number for o in orders)]
    assert len(mail.outbox) == 1


def test_a_task_that_finds_the_export_held_elsewhere_looks_again_after_the_lease(olga, settings):
    export = order_export_create(requester=olga, filters={}, queue=False)
    OrderExport.objects.filter(pk=export.pk).update(
        status="running",
        lease_holder="0123456789ab/4242/feedfacecafe",  # a worker on another machine
        lease_token=1,
        lease_expires_at=Now() + timedelta(seconds=30),
    )

    with mock.patch.object(export_orders, "apply_async") as again:
        status = export_orders.apply(args=(export.pk,)).get()

    assert status == "running"
    again.assert_called_once_with((export.pk,), countdown=settings.STEP_LEASE_S)
    assert mail.outbox == []


def export_part(export: OrderExport, number: int) -> str:
    return export.file.name.removesuffix(".csv") + f"-part-{number}.csv"


def test_an_export_is_written_to_a_storage_without_paths_like_s3_and_resumes_there(
    olga, settings, monkeypatch, pathless_private_storage
):
    settings.EXPORT_BATCH = 2
    product = product_create()
    orders = [order_on(1, (product, 1)) for _ in range(3)]
    export = order_export_create(requester=olga, filters={}, queue=False)
    real_rows = exports._order_rows

    def rows_until_the_second_batch(order):
        if order.pk == orders[2].pk:
            raise WorkerKilled
        return real_rows(order)

    monkeypatch.setattr(exports, "_order_rows", rows_until_the_second_batch)
    with pytest.raises(WorkerKilled):
        order_export_run(export_id=export.pk)
    monkeypatch.setattr(exports, "_order_rows", real_rows)

    order_export_run(export_id=export.pk)

    export.refresh_from_db()
    storage = export.file.storage
    assert type(storage._wrapped).__name__ == "PathlessStorage"
    assert (export.status, export.rows_done, export.parts_done) == ("done", 3, 3)
    assert [row[0] for row in csv_rows(export)] == ["number", *(o.number for o in orders)]
    assert storage.listdir("exports") == ([], [export.file.name.removeprefix("exports/")])


def test_a_failed_export_keeps_no_file_and_tells_the_requester_once(olga, monkeypatch):
    order_on(1, (product_create(), 1))

    def broken(order):
        raise ValueError("disk full")

    monkeypatch.setattr(exports, "_order_rows", broken)
    export = exported(olga, {})
    order_export_run(export_id=export.pk)

    assert (export.status, export.message, export.file.name) == (
        "failed",
        "ValueError: disk full",
        "",
    )
    [message] = mail.outbox
    assert message.subject == f"Order export {export.pk} failed"
    assert "ValueError: disk full" in message.body


@pytest.fixture
def ready_export(olga):
    order_on(1, (product_create(sku="MUG"), 1))
    return exported(olga, {"sku": "MUG"})


def test_the_link_serves_the_csv_to_its_requester(client, olga, ready_export):
    client.force_login(olga)

    response = client.get(f"/exports/{ready_export.pk}/orders.csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"] == (
        f'attachment; filename="orders-export-{ready_export.pk}.csv"'
    )
    assert b"".join(response.streaming_content).decode().splitlines()[0] == ",".join(COLUMNS)


def test_the_link_is_refused_to_another_user_even_a_superuser(admin_client, ready_export):
    response = admin_client.get(f"/exports/{ready_export.pk}/orders.csv")

    assert response.status_code == 403
    assert response.content.decode() == (
        "This export belongs to another user; only who asked for it may download it.\n"
    )


def test_the_link_is_gone_after_it_expires(client, olga, ready_export):
    client.force_login(olga)

    with time_machine.travel(ready_export.expires_at + timedelta(seconds=1), tick=False):
        response = client.get(f"/exports/{ready_export.pk}/orders.csv")

    assert response.status_code == 410
    assert response.content.decode() == (
        f"This download link expired at {ready_export.expires_at:%Y-%m-%d %H:%M} UTC and the "
        "file is deleted. Start a new export from Admin › Orders.\n"
    )


def test_the_link_sends_a_logged_out_visitor_to_the_login(client, ready_export):
    response = client.get(f"/exports/{ready_export.pk}/orders.csv")

    assert response.status_code == 302
    assert response["Location"] == (f"/admin/login/?next=/exports/{ready_export.pk}/orders.csv")


def test_the_admin_action_exports_the_selection(
    admin_client, admin_user, django_capture_on_commit_callbacks
):
    product = product_create()
    first, _, third = (order_on(1, (product, 1)) for _ in range(3))

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            "/admin/orders/order/",
            {"action": "export_orders", "_selected_action": [first.pk, third.pk]},
        )

    export = OrderExport.objects.get()
    assert response.status_code == 302
    assert len(callbacks) == 1
    assert (export.requester, export.filters, export.status) == (
        admin_user,
        {"ids": sorted([first.pk, third.pk])},
        "queued",
    )


def test_selecting_all_across_pages_exports_the_changelist_filter(admin_client):
    order = order_on(1, (product_create(), 1))

    admin_client.post(
        "/admin/orders/order/?status__exact=paid&channel__exact=api&q=ada+example&o=1"
        "&created_at__gte=2026-05-01+00%3A00%3A00%2B00%3A00"
        "&created_at__lt=2026-05-02+00%3A00%3A00%2B00%3A00",
        {"action": "export_orders", "select_across": "1", "_selected_action": [order.pk]},
    )
    export = order_export_run(export_id=OrderExport.objects.get().pk)
    listing = admin_client.get("/admin/orders/orderexport/").content.decode()
    detail = admin_client.get(f"/admin/orders/orderexport/{export.pk}/change/")

    assert export.filters == {
        "status": ["paid"],
        "channel": ["api"],
        "search": "ada example",
        "created_from": "2026-05-01T00:00:00+00:00",
        "created_to": "2026-05-02T00:00:00+00:00",
    }
    assert export.rows_done == 1
    assert '<progress value="1" max="1"></progress> 1 / 1' in listing
    assert detail.status_code == 200
    assert "status paid; channel api; created from 2026-05-01T00:00:00+00:00" in (
        detail.content.decode()
    )


def test_an_unexportable_changelist_filter_is_refused_with_a_message(admin_client):
    order = order_on(1, (product_create(), 1))

    response = admin_client.post(
        "/admin/orders/order/?total_cents__gt=5",
        {"action": "export_orders", "select_across": "1", "_selected_action": [order.pk]},
        follow=True,
    )

    assert OrderExport.objects.count() == 0
    assert [str(m) for m in response.context["messages"]] == [
        "Not exported: total_cents__gt: this list filter cannot be exported; "
        "select the orders instead"
    ]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--requested-by", "nobody"], "--requested-by: no user named 'nobody'"),
        (
            ["--requested-by", "olga", "--status", "shipped"],
            "--status: unknown value 'shipped'; expected placed, paid, completed, "
            "payment_failed, needs_attention, cancelled",
        ),
        (
            ["--requested-by", "olga", "--since", "last week"],
            "--since: expected an ISO-8601 date or date-time like 2026-05-01 or a duration "
            "like 30m, 2h or 7d back from now, got 'last week'",
        ),
        (
            ["--requested-by", "olga", "--since", "2026-05-02", "--until", "2026-05-01"],
            "--until: must be after created_from",
        ),
        (
            ["--requested-by", "carl"],
            "--requested-by: carl is not an active staff user who may view orders",
        ),
        (
            ["--requested-by", "nomail"],
            "--requested-by: nomail has no email address to send the link to",
        ),
    ],
)
def test_the_command_refuses_bad_arguments_naming_the_option(
    arguments, message, olga, django_user_model
):
    django_user_model.objects.create_user("carl", "carl@example.com", "pw-123456")
    nomail = staff_user(django_user_model, "nomail")
    django_user_model.objects.filter(pk=nomail.pk).update(email="")

    with pytest.raises(CommandError) as refused:
        call_command("export_orders", *arguments)

    assert str(refused.value) == message
    assert OrderExport.objects.count() == 0


def test_the_command_exports_inline_and_emails_the_link(olga, capsys):
    order_on(1, (product_create(), 1), status="completed")
    order_on(1, (product_create(), 1), status="paid")

    call_command("export_orders", "--requested-by", "olga", "--status", "completed", "--inline")

    export = OrderExport.objects.get()
    assert capsys.readouterr().out == (
        f"export {export.pk}: status completed\n"
        f"export {export.pk} done: 1 orders; link emailed to olga@shop.example, "
        f"valid until {export.expires_at:%Y-%m-%d %H:%M} UTC\n"
    )
    assert len(mail.outbox) == 1


def test_the_daily_cleanup_removes_expired_export_files_and_keeps_the_rows(olga):
    order_on(1, (product_create(), 1))
    old, fresh = exported(olga, {}), exported(olga, {})
    OrderExport.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    old_path = old.file.path

    report = records_cleanup()

    assert report.deleted["expired export files"] == 1
    assert list(OrderExport.objects.order_by("pk").values_list("file", flat=True)) == [
        "",
        fresh.file.name,
    ]
    assert not open_ok(old_path)
    assert open_ok(fresh.file.path)


def open_ok(path: str) -> bool:
    try:
        open(path).close()
    except FileNotFoundError:
        return False
    return True
