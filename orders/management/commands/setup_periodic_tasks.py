from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from config.schedule import JOBS, Job


def schedule_for(job: Job) -> dict:
    if job.every_s:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=job.every_s, period=IntervalSchedule.SECONDS
        )
        return {"interval": interval}
    minute, hour, day_of_month, month_of_year, day_of_week = job.cron.split()
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone=job.timezone,
    )
    return {"crontab": crontab}


class Command(BaseCommand):
    help = "Register the periodic jobs with django-celery-beat (idempotent; keeps operator edits)."

    @transaction.atomic
    def handle(self, *args, **options):
        for job in JOBS:
            # By name only: an operator's later edit of the schedule stays as it is.
            _, created = PeriodicTask.objects.get_or_create(
                name=job.name,
                defaults={
                    "task": job.task,
                    "expire_seconds": job.expires_s,
                    "description": f"{job.description} Times in {job.timezone}.",
                    **schedule_for(job),
                },
            )
            self.stdout.write(f"{'registered' if created else 'kept'}: {job.name} ({job.task})")
