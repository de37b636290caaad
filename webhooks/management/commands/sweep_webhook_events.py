"""Publish again the orders whose partner events wait past their time (what beat's sweep
does every minute), now: after a worker was killed, or with beat stopped."""

from typing import Any

from django.core.management.base import BaseCommand

from webhooks.services import events_sweep


class Command(BaseCommand):
    help = "Publish the orders whose webhook events are due and were not processed."

    def handle(self, *args: Any, **options: Any) -> None:
        numbers = events_sweep()
        self.stdout.write(f"published {len(numbers)} orders: {' '.join(numbers)}".rstrip())
