from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.schedule import JOBS


class Command(BaseCommand):
    help = "Register the periodic jobs with django-celery-beat (idempotent; keeps operator edits)."

    @transaction.atomic
    def handle(self, *args, **options):
        for job in JOBS:
            schedule, _ = IntervalSchedule.objects.get_or_create(
                every=job.every_s, period=IntervalSchedule.SECONDS
            )
            # By name only: an operator's later edit of the schedule stays as it is.
            _, created = PeriodicTask.objects.get_or_create(
                name=job.name,
                defaults={
                    "task": job.task,
                    "interval": schedule,
                    "expire_seconds": job.expires_s,
                    "description": job.description,
                },
            )
            self.stdout.write(f"{'registered' if created else 'kept'}: {job.name} ({job.task})")
