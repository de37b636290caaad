from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0007_outbox_key"),
        # After the job's model is renamed, so that unapplying this re-adds the foreign key
        # to the table the job has then.
        ("shop", "0006_catalog_jobs"),
    ]

    operations = [
        migrations.AlterField(
            model_name="outboxemail",
            name="key",
            field=models.CharField(max_length=200, unique=True),
        ),
        migrations.RemoveConstraint(
            model_name="outboxemail",
            name="one_email_per_kind_per_order",
        ),
        migrations.RemoveField(model_name="outboxemail", name="order"),
        migrations.RemoveField(model_name="outboxemail", name="alert"),
        migrations.RemoveField(model_name="outboxemail", name="import_job"),
        migrations.RemoveField(model_name="outboxemail", name="order_export"),
        migrations.RemoveField(model_name="outboxemail", name="lifecycle_step"),
    ]
