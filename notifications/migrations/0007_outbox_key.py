"""Every outbox email gets the key its sender names it by, derived here for the rows
that exist from their owner and kind; 0008 then drops the owners' foreign keys."""

from django.db import migrations, models

BATCH = 1000


def legacy_key(email) -> str:
    """The key today's senders give the email this row stands for."""
    if email.order_id:
        return f"order:{email.order.number}:{email.kind}"
    if email.alert_id:
        return f"alert:{email.alert_id}"
    if email.import_job_id:
        return f"catalog-job:{email.import_job_id}"
    if email.order_export_id:
        return f"order-export:{email.order_export_id}"
    if email.lifecycle_step_id:
        return f"lifecycle-step:{email.lifecycle_step_id}"
    return f"email:{email.pk}"  # an owner that never was: unique, and sent by nobody again


def keys_derive(apps, schema_editor):
    OutboxEmail = apps.get_model("notifications", "OutboxEmail")
    rows = OutboxEmail.objects.filter(key__isnull=True).select_related("order").order_by("pk")
    while batch := list(rows[:BATCH]):
        for email in batch:
            email.key = legacy_key(email)
        OutboxEmail.objects.bulk_update(batch, ["key"])


def owners_restore(apps, schema_editor):
    OutboxEmail = apps.get_model("notifications", "OutboxEmail")
    Order = apps.get_model("orders", "Order")
    owner_fields = {
        "alert": "alert_id",
        "catalog-job": "import_job_id",
        "order-export": "order_export_id",
        "lifecycle-step": "lifecycle_step_id",
    }
    for email in OutboxEmail.objects.iterator():
        owner, _, rest = email.key.partition(":")
        if owner == "order":
            email.order_id = Order.objects.get(number=rest.rsplit(":", 1)[0]).pk
        elif owner in owner_fields:
            setattr(email, owner_fields[owner], int(rest))
        email.save()


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0006_export_email"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxemail",
            name="key",
            field=models.CharField(max_length=200, null=True),
        ),
        migrations.AddField(
            model_name="outboxemail",
            name="html",
            field=models.TextField(blank=True, default=""),
            preserve_default=False,
        ),
        migrations.RunPython(keys_derive, owners_restore),
    ]
