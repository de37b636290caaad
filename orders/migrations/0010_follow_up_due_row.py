# FollowUp on the one due-row model (engine/due_rows.py): a running status while a run
# holds it, its attempts and last error, and done_at named finished_at. Every row is kept
# as it was: the old statuses (pending, done, cancelled) are statuses of the new model,
# and a pending row with a claim from a run that died is taken again once it is stale.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0009_step_name_stems"),
    ]

    operations = [
        migrations.RenameField(
            model_name="followup",
            old_name="done_at",
            new_name="finished_at",
        ),
        migrations.AddField(
            model_name="followup",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="followup",
            name="last_error",
            field=models.TextField(blank=True, default=""),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="followup",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "pending"),
                    ("running", "running"),
                    ("done", "done"),
                    ("failed", "failed"),
                    ("cancelled", "cancelled"),
                ],
                default="pending",
                max_length=10,
            ),
        ),
    ]
