from datetime import datetime, timedelta

from django.db.models import Count, Q

from webhooks.models import InboxEvent

# An event tried this often and still waiting counts as failing.
FAILING_ATTEMPTS = 3


def events_failing_by_partner(*, now: datetime) -> dict[str, int]:
    """Per partner, its events that failed, or still wait after FAILING_ATTEMPTS tries,
    in the last hour."""
    failing = InboxEvent.objects.filter(
        Q(status=InboxEvent.Status.FAILED)
        | Q(status=InboxEvent.Status.RECEIVED, attempts__gte=FAILING_ATTEMPTS),
        attempted_at__gte=now - timedelta(hours=1),
    )
    return dict(failing.values("partner").annotate(n=Count("pk")).values_list("partner", "n"))


def inbox_by_partner_and_status() -> dict[tuple[str, str], int]:
    rows = InboxEvent.objects.values("partner", "status").annotate(n=Count("pk"))
    return {(row["partner"], row["status"]): row["n"] for row in rows}
