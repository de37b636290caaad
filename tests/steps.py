"""Driving steps one delivery at a time against the real sandbox, and losing its answers."""

from unittest import mock

from celery.exceptions import Retry


def deliver(task, order) -> mock.Mock:
    """One delivery of a step's message; the retry it asks for is not run (returned)."""
    with mock.patch.object(task, "retry", side_effect=Retry("later")) as retry:
        task.apply(args=(order.pk,))
    return retry


def answers_lost(sandbox, *, effects: float, lookups: float) -> None:
    """Lose every partner's answers (the effects still happen) for the next seconds:
    those of effectful calls, and those of the look-ups by key."""
    control = {"answers_lost_s": effects, "lookups_lost_s": lookups}
    sandbox.post("/control", json=control).raise_for_status()


def effects(sandbox, partner: str) -> list[tuple[str, str]]:
    """(kind, order) of each effect the partner's ledger holds."""
    return [(e["kind"], e["order"]) for e in sandbox.get("/ledger").json()[partner]["effects"]]
