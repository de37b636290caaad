"""Steps made before every step was queued when made (issue 16, finding 5 review): the
undos were added pending with no queued_at, so how old their calls' keys are was not
known and their retry budget in time never started. Each such row, and any other that
has been queued, takes its creation as its first queueing: no later than its first
call, so the key's age is never underestimated."""

from django.db import migrations
from django.db.models import F, Q

UNDOS = ("payment_refund", "erp_cancel", "label_void")


def queued_at_known(apps, schema_editor) -> None:
    Step = apps.get_model("orders", "Step")
    Step.objects.filter(Q(name__in=UNDOS) | ~Q(status="pending"), queued_at__isnull=True).update(
        queued_at=F("created_at")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0020_step_blame"),
    ]

    operations = [migrations.RunPython(queued_at_known, migrations.RunPython.noop)]
