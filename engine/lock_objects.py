"""The engine's row-locking querysets: one step record at a time, and due rows a batch
at a time.

A claim takes one step row and joins its subject for reading only (`of=("self",)`):
it must not lock the subject's row, or it could wait in a cycle with a domain service
that locks the subject and then its steps (orders/lock_objects.py has the whole order).
"""

from django.db.models import QuerySet

from engine.pipeline import pipeline


def step_for_update(*, subject_id: int, name: str) -> QuerySet:
    p = pipeline()
    return (
        p.steps_of(subject_id)
        .select_for_update(of=("self",))
        .select_related(p.subject)
        .filter(name=name)
    )


def step_by_pk_for_update(*, pk: int) -> QuerySet:
    p = pipeline()
    return p.model.objects.select_for_update(of=("self",)).select_related(p.subject).filter(pk=pk)


def due_rows_for_update(*, rows: QuerySet, due_field: str) -> QuerySet:
    """Due rows, earliest first, locked; a row another runner holds is skipped, not waited
    for (one it claimed and committed no longer matches when PostgreSQL re-reads it)."""
    return rows.order_by(due_field, "pk").select_for_update(skip_locked=True)
