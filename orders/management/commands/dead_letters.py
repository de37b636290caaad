import re
from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from orders.pipeline import STEPS
from orders.services.dead_letters import dead_letters_retry, dead_letters_select

DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def since_parse(value: str) -> datetime:
    """Accept an ISO-8601 time or a duration back from now: 30m, 2h, 7d."""
    match = DURATION.match(value)
    if match:
        return timezone.now() - timedelta(**{UNITS[match[2]]: int(match[1])})
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(
            f"--since: expected an ISO-8601 time or a duration like 2h, got {value!r}"
        )
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = "List dead letters (steps that failed for good) or retry them."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["list", "retry"])
        parser.add_argument("--step", choices=sorted(STEPS), help="only this step")
        parser.add_argument("--since", help="failed since: ISO-8601 time or 30m, 2h, 7d")

    def handle(self, *args, action: str, step: str | None, since: str | None, **options):
        letters = dead_letters_select(step=step, since=since_parse(since) if since else None)
        if action == "list":
            for letter in letters:
                self.stdout.write(
                    f"{letter.order.number}  {letter.name:<20} attempts={letter.attempts} "
                    f"failed={letter.finished_at:%Y-%m-%d %H:%M:%S}  {letter.last_error}"
                )
            self.stdout.write(f"{len(letters)} dead letters")
            return
        report = dead_letters_retry(step_ids=list(letters.values_list("pk", flat=True)))
        for number, name, why in report.skipped:
            self.stdout.write(f"skipped {number} {name}: {why}")
        self.stdout.write(f"retried {len(report.retried)}, skipped {len(report.skipped)}")
