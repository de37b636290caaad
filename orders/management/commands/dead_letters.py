from django.core.management.base import BaseCommand

from engine.dead_letters import dead_letters_retry, dead_letters_select
from kit.options import SINCE_HELP, option_parse, since_parse
from orders.pipeline import STEPS


class Command(BaseCommand):
    help = "List dead letters (steps that failed for good) or retry them."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["list", "retry"])
        parser.add_argument("--step", choices=sorted(STEPS), help="only this step")
        parser.add_argument("--since", help=f"failed {SINCE_HELP}")

    def handle(self, *args, action: str, step: str | None, since: str | None, **options):
        since_moment = option_parse("--since", since_parse, since) if since else None
        letters = dead_letters_select(step=step, since=since_moment)
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
