from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

# name, task, every (seconds), expires (seconds), description
JOBS = (
    (
        "Reconcile lost pipeline steps",
        "orders.reconcile_steps",
        60,
        50,
        "Re-dispatch steps stuck queued/running past their deadline and pending steps whose "
        "dispatch was lost; dead-letter poison pills. Safe to run twice.",
    ),
    (
        "Check dead letters, breakers and queues",
        "notifications.check_alerts",
        60,
        50,
        "Email ops once per incident: dead letters above threshold, a partner's circuit "
        "breaker open, a queue backlog or its oldest waiting step above threshold.",
    ),
)


class Command(BaseCommand):
    help = "Register the periodic jobs with django-celery-beat (idempotent; keeps operator edits)."

    @transaction.atomic
    def handle(self, *args, **options):
        for name, task, every, expires, description in JOBS:
            schedule, _ = IntervalSchedule.objects.get_or_create(
                every=every, period=IntervalSchedule.SECONDS
            )
            # get_or_create by name only: an operator's later edit of the schedule stays.
            _, created = PeriodicTask.objects.get_or_create(
                name=name,
                defaults={
                    "task": task,
                    "interval": schedule,
                    "expire_seconds": expires,  # a late tick is dropped, not piled up
                    "description": description,
                },
            )
            self.stdout.write(f"{'registered' if created else 'kept'}: {name} ({task})")
