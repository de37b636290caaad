"""Step records take their steps' name stems (issue 12): one name per step, from the
pipeline declaration to its task, service and partner call. Reversible.

The names are written out here, not read from orders/pipeline.py, so this migration
keeps meaning what it meant when the pipeline changes again.
"""

from django.db import migrations
from django.db.models import Case, Value, When

STEMS = {
    "payment": "payment_capture",
    "confirmation_email": "confirmation_email_send",
    "invoice": "invoice_render",
    "label": "label_purchase",
    "analytics": "analytics_track",
    "refund": "payment_refund",
    "cancellation_email": "cancellation_email_send",
    "payment_failed_email": "payment_failed_email_send",
    # erp_sync, erp_cancel and label_void were stems already.
}


def _rename(apps, names: dict[str, str]) -> None:
    # One UPDATE, so a large table is read once.
    apps.get_model("orders", "Step").objects.filter(name__in=names).update(
        name=Case(*(When(name=old, then=Value(new)) for old, new in names.items()))
    )


def to_stems(apps, schema_editor) -> None:
    _rename(apps, STEMS)


def to_old_names(apps, schema_editor) -> None:
    _rename(apps, {new: old for old, new in STEMS.items()})


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0008_step_leases"),
    ]

    operations = [
        migrations.RunPython(to_stems, to_old_names),
    ]
