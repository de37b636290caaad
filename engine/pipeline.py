"""How a domain declares its pipeline to the engine: steps, what each waits for, the
step-record model, and the hooks through which the domain hears what happened.

Hooks are dotted paths, resolved on first use, so a domain can declare its pipeline
in a module its services import (the services are the hooks).
"""

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db.models import Model, QuerySet
from django.utils.module_loading import import_string

from config.queues import queue_for
from kit.retry import RetryPolicy


@dataclass(frozen=True)
class StepSpec:
    name: str
    task: str
    retry: RetryPolicy
    after: str | None = None
    # A step whose final failure ends its subject (read by the domain's step_failed hook).
    fails_subject: bool = False
    # The partner it calls: its circuit breaker defers the step while open.
    partner: str | None = None
    # For a compensation: the forward step whose effect it undoes.
    undoes: str | None = None
    # Dotted path to (subject) -> result | None: after an attempt whose outcome is
    # unknown, ask the partner by key what it did before anything else, and record it;
    # None when it did nothing (the step's work then runs). Raises OutcomeUnknown while
    # the partner cannot say.
    settle: str | None = None

    @property
    def queue(self) -> str:
        return queue_for(self.task)


@dataclass(frozen=True)
class Hooks:
    """Where the domain plugs in; each a dotted path to a keyword-only function."""

    # (step) after a step succeeded, and when a redelivery finds it had: the subject's
    # status follows its steps.
    step_succeeded: str
    # (step) a step failed for good (out of retries, permanent error, poison pill).
    step_failed: str
    # (name) -> Q | None: the step rows of that name whose subject has ended, so that a
    # never-started step must not start (None: a step of that name may always start).
    # A condition, not a check in Python: the claim asks it in its statement.
    subject_ended: str
    # (step) -> str | None: with the subject locked, why this dead letter must not run
    # again, or None after making the subject ready for it.
    subject_reopen: str
    # (now) -> list[str]: subjects the reconciliation finds left behind, brought up to
    # date; returns their labels.
    subjects_settle: str


class Pipeline:
    """The steps of one kind of subject and the hooks of its domain."""

    def __init__(
        self,
        *,
        step_model: str,
        subject: str,
        forward: tuple[StepSpec, ...],
        followups: tuple[StepSpec, ...] = (),
        hooks: Hooks,
    ) -> None:
        self.step_model_label = step_model
        self.subject = subject  # the step model's foreign key to the subject
        self.forward = forward
        self.all_steps = forward + followups
        self.steps: dict[str, StepSpec] = {spec.name: spec for spec in self.all_steps}
        self.by_task: dict[str, StepSpec] = {spec.task: spec for spec in self.all_steps}
        self.position: dict[str, int] = {spec.name: n for n, spec in enumerate(self.all_steps)}
        self.forward_names = [spec.name for spec in forward]
        self.root = forward[0].name
        self.partners = tuple(dict.fromkeys(s.partner for s in self.all_steps if s.partner))
        # What waits for each step: made ready when it succeeds (engine/dispatch.py).
        self.successors: dict[str, tuple[str, ...]] = {
            name: tuple(spec.name for spec in forward if spec.after == name) for name in self.steps
        }
        self._hooks = hooks
        assert all(
            spec.after is None or self.position[spec.after] < self.position[spec.name]
            for spec in forward
        ), "a step must be declared after the step it waits for"

    @cached_property
    def model(self) -> type[Model]:
        return apps.get_model(self.step_model_label)

    def hook(self, name: str) -> Any:
        return import_string(getattr(self._hooks, name))

    def subject_of(self, step: Model) -> Model:
        return getattr(step, self.subject)

    def subject_id_of(self, step: Model) -> int:
        return getattr(step, f"{self.subject}_id")

    def steps_of(self, subject_id: int) -> QuerySet:
        return self.model.objects.filter(**{f"{self.subject}_id": subject_id})


_pipeline: list[Pipeline] = []


def pipeline() -> Pipeline:
    """The pipeline settings.ENGINE_PIPELINE names."""
    if not _pipeline:
        _pipeline.append(import_string(settings.ENGINE_PIPELINE))
    return _pipeline[0]
