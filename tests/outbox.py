"""Helpers for the outbox's race tests: senders that all look for an email's key before
any of them writes it, each on its own thread and database connection."""

import threading
from collections.abc import Callable

from notifications.models import OutboxEmail
from tests.threads import at_once


def senders_race(monkeypatch, work: Callable[[], object], *, senders: int) -> list[object]:
    """Run `work` on `senders` threads at once, every insert of an outbox row held until
    all of them are about to insert; return each one's result or exception class name."""
    barrier = threading.Barrier(senders)
    save = OutboxEmail.save

    def save_together(self, *args, **kwargs):
        barrier.wait(timeout=10)
        save(self, *args, **kwargs)

    monkeypatch.setattr(OutboxEmail, "save", save_together)

    def work_or_error() -> object:
        try:
            return work()
        except Exception as exc:
            return type(exc).__name__

    return at_once(work_or_error, threads=senders)
