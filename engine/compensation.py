"""Compensation decided by state: the undo of a forward step (a spec that `undoes` it)
is created when its subject has ended and the step has reached its final state with an
effect that is, or may be, in place: it succeeded, or it stopped with its effect unknown
(no answer came, its worker died mid-call, it was cancelled after such an attempt).

Never by polling: an undo does not exist while its forward step can still act, so it
neither waits nor runs out of attempts waiting. Whoever makes a forward step final on an
ended subject calls `undos_create`: the domain when it ends a subject (its waiting steps
cancelled) and when a step finishes afterwards (its hooks), the claim when it stops a
step of an ended subject.
"""

from collections.abc import Iterable

from django.db.models.functions import Now

from engine.dispatch import steps_dispatch_on_commit
from engine.models import StepRecord
from engine.pipeline import StepSpec, pipeline

Status = StepRecord.Status


def steps_add(*, subject_id: int, specs: Iterable[StepSpec]) -> None:
    """Add pending step records, queued now (published by the caller after its commit):
    their queue's age, their retry budget in time and how old their calls' idempotency
    keys are start here. Steps the subject already has are left as they are."""
    p = pipeline()
    p.model.objects.bulk_create(
        (
            p.model(
                **{f"{p.subject}_id": subject_id},
                name=spec.name,
                position=p.position[spec.name],
                queue=spec.queue,
                queued_at=Now(),
            )
            for spec in specs
        ),
        ignore_conflicts=True,
    )


def effect_in_place(*, status: str, effect_unknown: bool) -> bool:
    """Whether a finished step's effect is, or may be, in place."""
    return status == Status.SUCCEEDED or (status in StepRecord.FINISHED and effect_unknown)


def undos_create(*, subject_id: int) -> tuple[str, ...]:
    """Add and publish (after commit) the undo of each finished forward step of an ended
    subject whose effect is or may be in place, once; return the undos added. Call only
    for a subject that has ended."""
    p = pipeline()
    undo_of = {spec.undoes: spec for spec in p.all_steps if spec.undoes}
    rows = p.steps_of(subject_id).filter(
        name__in=[*undo_of, *(spec.name for spec in undo_of.values())]
    )
    have = set()
    needed = []
    for name, status, effect_unknown in rows.values_list("name", "status", "effect_unknown"):
        have.add(name)
        if name in undo_of and effect_in_place(status=status, effect_unknown=effect_unknown):
            needed.append(undo_of[name])
    added = tuple(spec.name for spec in needed if spec.name not in have)
    if added:
        steps_add(subject_id=subject_id, specs=(p.steps[name] for name in added))
        steps_dispatch_on_commit(subject_id=subject_id, names=added)
    return added
