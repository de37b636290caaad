"""Helpers for the outbox's race tests: senders that all look for an email's key before
any of them writes it, each on its own thread and database connection."""

import threading
from collections.abc import Callable

from django.db import connection

from notifications.models import OutboxEmail


def senders_race(monkeypatch, work: Callable[[], object], *, senders: int) -> list[object]:
    """Run `work` on `senders` threads at once, every insert of an outbox row held until
    all of them are about to insert; return each one's result or exception class name."""
    barrier = threading.Barrier(senders)
    save = OutboxEmail.save

    def save_together(self, *args, **kwargs):
        barrier.wait(timeout=10)
        save(self, *args, **kwargs)

    monkeypatch.setattr(OutboxEmail, "save", save_together)
    outcomes: list[object] = []

    def sender():
        try:
            outcomes.append(work())
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
