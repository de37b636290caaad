"""Migrations 0007 and 0008 keep every outbox email, each under the key its sender now
gives, and drop the owners' foreign keys."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from notifications.models import OutboxEmail
from tests.factories import order_place, product_create

BEFORE = ("notifications", "0006_export_email")


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()  # what was just applied, for the next state asked for
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_emails_of_every_owner_are_kept_under_the_keys_their_senders_give(django_user_model):
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    # Every other app as it is now, notifications as it was before the keys.
    old = migrate([node for node in latest if node[0] != "notifications"] + [BEFORE])
    try:
        email = old.get_model("notifications", "OutboxEmail")

        def owner(field: str):
            return email._meta.get_field(field).related_model

        order = order_place((product_create(), 1)).order
        alert = owner("alert").objects.create(kind="dead_letters", subject="all", message="3")
        job = owner("import_job").objects.create(requested_by="ops@shop.example")
        requester = django_user_model.objects.create_user("olga", "olga@shop.example")
        export = owner("order_export").objects.create(requester_id=requester.pk, filters={})
        step_model = owner("lifecycle_step")
        subscription_model = step_model._meta.get_field("subscription").related_model
        product = subscription_model._meta.get_field("product").related_model.objects.get()
        subscription = subscription_model.objects.create(
            email="ada@example.com", name="Ada", product_id=product.pk
        )
        step = step_model.objects.create(
            subscription=subscription, cycle=1, kind="winback", due_at=timezone.now()
        )
        rows = [
            dict(order_id=order.pk, kind="order_confirmation", status="sent"),
            dict(order_id=order.pk, kind="payment_failed", status="pending"),
            dict(alert_id=alert.pk, kind="ops_alert", body="3 dead letters", status="sent"),
            dict(import_job_id=job.pk, kind="import_done", body="done", status="sent"),
            dict(order_export_id=export.pk, kind="export_done", body="ready", status="sending"),
            dict(lifecycle_step_id=step.pk, kind="winback", body="Hello Ada", status="sent"),
            dict(kind="order_confirmation", status="sent"),  # its owner never was
        ]
        created = [email.objects.create(to="x@example.com", subject="s", **row) for row in rows]
    finally:
        migrate(latest)

    assert sorted(OutboxEmail.objects.values_list("pk", "key", "kind", "status", "body")) == [
        (
            created[0].pk,
            f"order:{order.number}:order_confirmation",
            "order_confirmation",
            "sent",
            "",
        ),
        (created[1].pk, f"order:{order.number}:payment_failed", "payment_failed", "pending", ""),
        (created[2].pk, f"alert:{alert.pk}", "ops_alert", "sent", "3 dead letters"),
        (created[3].pk, f"catalog-job:{job.pk}", "import_done", "sent", "done"),
        (created[4].pk, f"order-export:{export.pk}", "export_done", "sending", "ready"),
        (created[5].pk, f"lifecycle-step:{step.pk}", "winback", "sent", "Hello Ada"),
        (created[6].pk, f"email:{created[6].pk}", "order_confirmation", "sent", ""),
    ]
    assert not {"order", "alert", "import_job", "order_export", "lifecycle_step"} & {
        f.name for f in OutboxEmail._meta.get_fields()
    }
