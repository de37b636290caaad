from django.db import migrations, models

# Errors the steps recorded before outcomes could be unknown that mean "the request went
# out and no answer came" (or the worker died mid-call).
UNANSWERED = r"(ReadTimeout|WriteTimeout|ReadError|WriteError|RemoteProtocolError|PoisonPill)"


def unknown_effects_mark(apps, schema_editor):
    """Steps running now (a run that dies mid-call may have acted) and steps whose last
    attempt got no answer have an effect that may be in place."""
    Step = apps.get_model("orders", "Step")
    Step.objects.filter(status="running").update(effect_unknown=True)
    Step.objects.filter(status__in=("retrying", "failed"), last_error__regex=UNANSWERED).update(
        effect_unknown=True
    )


class Migration(migrations.Migration):
    dependencies = [("orders", "0017_step_ready_unpublished")]

    operations = [
        migrations.AddField(
            model_name="step", name="effect_unknown", field=models.BooleanField(default=False)
        ),
        migrations.RunPython(unknown_effects_mark, migrations.RunPython.noop),
    ]
