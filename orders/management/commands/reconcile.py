import time

from django.core.management.base import BaseCommand

from engine.reconcile import steps_reconcile


class Command(BaseCommand):
    help = "Dispatch again the steps whose message was lost; dead-letter poison pills."

    def add_arguments(self, parser):
        parser.add_argument(
            "--every", type=float, help="run again every this many seconds, until stopped"
        )

    def handle(self, *args, every: float | None, **options):
        while True:
            report = steps_reconcile()
            for number, name, was in report.redispatched:
                self.stdout.write(f"re-dispatched {number} {name} (was {was})")
            for number, name in report.poisoned:
                self.stdout.write(f"dead-lettered {number} {name}: poison pill")
            self.stdout.write(
                f"{len(report.redispatched)} re-dispatched, {len(report.poisoned)} poison pills"
            )
            if not every:
                return
            self.stdout.flush()
            time.sleep(every)
