from django.db import migrations, models
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce


def acknowledged_at_fill(apps, schema_editor):
    """Orders the ERP already has: when it took them is not known any more, so the
    nearest time we have, the succeeded sync step's finish, else the order's last change
    (the cleanup may have deleted the step). Both are past every count still to come."""
    Order = apps.get_model("orders", "Order")
    Step = apps.get_model("orders", "Step")
    synced = Step.objects.filter(order=OuterRef("pk"), name="erp_sync", status="succeeded")
    Order.objects.exclude(erp_reference="").update(
        erp_acknowledged_at=Coalesce(
            Subquery(synced.values("finished_at")[:1]), models.F("updated_at")
        )
    )


class Migration(migrations.Migration):
    dependencies = [("orders", "0012_export_parts")]

    operations = [
        migrations.AddField(
            model_name="order",
            name="erp_acknowledged_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(acknowledged_at_fill, migrations.RunPython.noop, elidable=True),
    ]
