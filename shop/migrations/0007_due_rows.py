# LifecycleStep on the one due-row model (engine/due_rows.py): a failed status, its
# attempts and last error, and done_at named finished_at; ProductImage gets the claim the
# one runner writes (it used to push next_attempt_at ahead instead). Every row is kept as
# it was: the old statuses are statuses of the new model.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0006_catalog_jobs"),
    ]

    operations = [
        migrations.RenameField(
            model_name="lifecyclestep",
            old_name="done_at",
            new_name="finished_at",
        ),
        migrations.AddField(
            model_name="lifecyclestep",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="lifecyclestep",
            name="last_error",
            field=models.TextField(blank=True, default=""),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="lifecyclestep",
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
        migrations.AddField(
            model_name="productimage",
            name="claimed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
