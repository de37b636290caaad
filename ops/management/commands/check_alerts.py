from django.core.management.base import BaseCommand

from ops.alerts import alerts_check


class Command(BaseCommand):
    help = "Check dead letters, breakers and queues; email ops about new incidents."

    def handle(self, *args, **options):
        firing = alerts_check()
        for condition in firing:
            self.stdout.write(f"FIRING {condition.kind} {condition.subject}: {condition.message}")
        self.stdout.write(f"{len(firing)} alerts firing")
