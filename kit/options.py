"""The one parser for date, time and duration options, in commands and the export API.

A moment is an ISO-8601 date (its midnight) or date-time; one without an offset is UTC.
A duration is a whole number and a unit: 30s, 15m, 2h, 7d. `--since` means the same in
every command: at or after a moment, given as one or as a duration back from now.
"""

import re
from datetime import UTC, datetime, timedelta

from django.core.management.base import CommandError
from django.utils import timezone

DURATION = re.compile(r"(\d+)([smhd])")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
MOMENT_EXPECTED = "an ISO-8601 date or date-time like 2026-05-01"
DURATION_EXPECTED = "a duration like 30m, 2h or 7d"
SINCE_HELP = "at or after: 2026-05-01, an ISO date-time, or a duration back from now (2h, 7d)"


def moment_parse(text: str) -> datetime:
    """The aware moment a date or date-time names; ValueError saying what was expected."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected {MOMENT_EXPECTED}, got {text!r}") from None
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    return moment


def duration_parse(text: str) -> timedelta:
    """The timedelta a duration such as 30m, 2h or 7d names; ValueError when it is not one."""
    match = DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"expected {DURATION_EXPECTED}, got {text!r}")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


def since_parse(text: str, *, now: datetime | None = None) -> datetime:
    """The moment a `--since` names: a date or date-time, or a duration back from now."""
    try:
        return (now or timezone.now()) - duration_parse(text)
    except ValueError:
        pass
    try:
        return moment_parse(text)
    except ValueError:
        raise ValueError(
            f"expected {MOMENT_EXPECTED} or {DURATION_EXPECTED} back from now, got {text!r}"
        ) from None


def option_parse(option: str, parse, text: str):
    """Parse a command option's text, or stop the command naming the option."""
    try:
        return parse(text)
    except ValueError as exc:
        raise CommandError(f"{option}: {exc}") from exc
