from collections import Counter

from notifications.models import OutboxEmail


def partners_slow_but_answering(rig, *, timeout_s: float = 10) -> None:
    """Let the rig's processes wait timeout_s for every partner (the rig's default is 1 s),
    so a test that slows the sandbox down gets answers, not timeouts."""
    for partner in ("PAYMENT", "ERP", "CARRIER", "ANALYTICS"):
        rig.env[f"{partner}_TIMEOUT_S"] = str(timeout_s)


def effects_per_order(ledger: dict, partner: str, kind: str) -> Counter:
    return Counter(e["order"] for e in ledger[partner]["effects"] if e["kind"] == kind)


def duplicates(ledger: dict) -> list[tuple[str, str, str]]:
    """Every (partner, kind, order) that has more than one effect."""
    counts = Counter(
        (partner, e["kind"], e["order"])
        for partner, book in ledger.items()
        for e in book["effects"]
    )
    return [key for key, n in counts.items() if n > 1]


def confirmations_per_order() -> Counter:
    keys = OutboxEmail.objects.filter(
        kind=OutboxEmail.Kind.ORDER_CONFIRMATION, status="sent"
    ).values_list("key", flat=True)
    return Counter(key.split(":")[1] for key in keys)  # order:<number>:<kind>


def sent_subjects(mail_dir) -> Counter:
    """Subjects of the emails Django's file backend wrote. One file can hold several
    messages (it appends per connection, and forked workers can pick the same name)."""
    return Counter(
        line.removeprefix("Subject: ")
        for path in mail_dir.iterdir()
        for line in path.read_text().splitlines()
        if line.startswith("Subject: ")
    )
