"""The step record's state machine: queued → running → succeeded / retrying / failed.

Every change is written when it happens, so the subject's page, the admin and the
reconciliation see the truth; the broker only carries messages. The domain hears of
each outcome through its pipeline's hooks.
"""

import enum
import functools
import logging
import traceback
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Model
from django.db.models.functions import Now

from engine.blame import next_run_queue, run_death_judge, run_is_alone, run_may_start_here
from engine.compensation import undos_create
from engine.dispatch import DEFERRED, steps_dispatch_on_commit, steps_ready
from engine.leases import Lease, lease_write
from engine.liveness import (
    claim_owner,
    lease_alive,
    lease_claiming,
    lease_drop,
    lease_hold,
    lease_holder,
)
from engine.lock_objects import step_by_pk_for_update, step_for_update
from engine.models import StepRecord
from engine.pipeline import pipeline
from kit.errors import OutcomeUnknown, StepError

logger = logging.getLogger(__name__)
Status = StepRecord.Status


class Claim(enum.Enum):
    RUN = "run"  # this delivery does the work
    # An earlier run's effect is unknown (no answer came, or its worker died): ask the
    # partner what it did (the step's settle) before doing the work.
    SETTLE = "settle"
    DONE = "done"  # already succeeded: nothing to do, let the steps after it go on
    STOP = "stop"  # must not run now (finished badly, cancelled, or running elsewhere)
    POISON = "poison"  # workers keep dying on it: dead-letter it instead of running it again


def _log_extra(step: Model, **fields) -> dict:
    p = pipeline()
    return {p.subject: str(p.subject_of(step)), "step": step.name, **fields}


def step_defer(*, subject_id: int, name: str, seconds: float, reason: str) -> bool:
    """Put a ready step off without counting an attempt; False if it is not ready.

    Not fenced: it touches only a step no run holds (queued, retrying), so
    there is no lease to check; a running step is never deferred."""
    return bool(
        pipeline()
        .steps_of(subject_id)
        # Ready ones only: a pending step (its parent not done) made retrying would look
        # ready to the claim.
        .filter(name=name, status__in=(Status.QUEUED, Status.RETRYING))
        .update(
            status=Status.RETRYING,
            last_error=f"{DEFERRED}{reason}",
            retry_at=Now() + timedelta(seconds=seconds),
        )
    )


def step_claim(
    *, subject_id: int, name: str, task_id: str, time_limit: float | None = None
) -> tuple[Claim, Model]:
    """Decide whether this delivery of a step's message runs it, and if so take its lease:
    a new fencing token, this process as holder, an expiry on the database's clock. A run
    still going after `time_limit` seconds (the task's hard limit by default) is abandoned
    by the heartbeat (engine/heartbeat.py)."""
    time_limit = time_limit or settings.CELERY_TASK_TIME_LIMIT
    claimed = _step_claim_at_once(
        subject_id=subject_id, name=name, task_id=task_id, time_limit=time_limit
    )
    if claimed is not None:
        return claimed
    claimed_pks: list[int] = []
    try:
        return _step_claim(
            subject_id=subject_id,
            name=name,
            task_id=task_id,
            time_limit=time_limit,
            claimed=claimed_pks,
        )
    except BaseException:
        for pk in claimed_pks:  # the claim did not commit: there is no lease to renew
            lease_drop(pipeline().model, pk)
        raise


# The usual claim in one statement: a step queued or retrying (no run holds it, its parent
# has succeeded), that may start here and whose subject has not ended, not locked by any
# transaction, is leased as _step_claim would; anything else is left to _step_claim.
# RETURNING gives the row as written, its subject and the database's clock; the FROM
# subquery gives what the row held before (effect_unknown: whether to settle first). Its
# lock is written here, not by select_for_update(), which Django compiles only inside a
# transaction: this statement is its own.
_CLAIM_SQL = """
UPDATE {table} AS s SET
    status = %s, attempts = s.attempts + 1, effect_unknown = TRUE, task_id = %s,
    claimed_by = %s, run_shared = %s, lease_holder = %s, lease_token = s.lease_token + 1,
    lease_expires_at = STATEMENT_TIMESTAMP() + make_interval(secs => %s),
    started_at = STATEMENT_TIMESTAMP(), retry_at = NULL
FROM ({chosen} FOR UPDATE OF {table} SKIP LOCKED) AS c (pk, was_unknown),
    {subject_table} AS o
WHERE s.{pk} = c.pk AND o.{subject_pk} = s.{subject_column}
RETURNING c.was_unknown, STATEMENT_TIMESTAMP(), {step_columns}, {subject_columns}
"""


def _step_claim_at_once(
    *, subject_id: int, name: str, task_id: str, time_limit: float
) -> tuple[Claim, Model] | None:
    """The usual claim, one statement that commits as it is made (PostgreSQL), where
    _step_claim takes four round trips; None when the step is in any other state, or its
    row is locked: then _step_claim decides, as it always did."""
    if connection.vendor != "postgresql":
        return None  # its statement is PostgreSQL's (UPDATE ... FROM ... RETURNING)
    p = pipeline()
    alone = run_is_alone()
    statement = _claim_statement(name, alone)
    params = [
        Status.RUNNING.value,
        task_id,
        claim_owner(),
        not alone,
        lease_holder(),
        settings.STEP_LEASE_S,
        *statement.params,
    ]
    params[statement.subject_param] = subject_id
    # Held from before the row is written until the lease is counted as this process's:
    # the row commits with the statement, and a thread of this process reading it must
    # find the lease alive (engine/liveness.py).
    with lease_claiming():
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        step = statement.step.instance(row[2 : statement.subject_from])
        lease_hold(p.model, step.pk, step.lease_token, time_limit)
    setattr(step, p.subject, statement.subject.instance(row[statement.subject_from :]))
    settle, step.db_now = row[0], row[1]
    return (Claim.SETTLE if settle else Claim.RUN), step


class _Columns:
    """A model's columns as a raw statement returns them, made into an instance with the
    conversions a queryset would apply (JSON decoded, and so on)."""

    def __init__(self, model: type[Model], alias: str) -> None:
        self.model = model
        fields = model._meta.concrete_fields
        quote = connection.ops.quote_name
        self.sql = ", ".join(f"{alias}.{quote(field.column)}" for field in fields)
        self.attnames = [field.attname for field in fields]
        self.converters = [
            (
                field.cached_col,
                connection.ops.get_db_converters(field.cached_col)
                + field.get_db_converters(connection),
            )
            for field in fields
        ]

    def instance(self, values) -> Model:
        converted = list(values)
        for n, (column, converters) in enumerate(self.converters):
            for converter in converters:
                converted[n] = converter(converted[n], column, connection)
        return self.model.from_db(connection.alias, self.attnames, converted)


@dataclass(frozen=True)
class _ClaimStatement:
    sql: str
    params: tuple  # the choice's, after the SET's; the subject's id at subject_param
    subject_param: int
    step: _Columns
    subject: _Columns
    subject_from: int  # where the subject's columns start in the returned row


_SUBJECT_PLACEHOLDER = -1  # compiled into the choice, then replaced by each claim's subject


@functools.cache
def _claim_statement(name: str, alone: bool) -> _ClaimStatement:
    """The claim's statement for a step name, in a thread alone or not, built once: the
    ORM compiles the choice (with the domain's condition) for a placeholder subject."""
    p = pipeline()
    chosen = p.steps_of(_SUBJECT_PLACEHOLDER).filter(
        name=name, status__in=(Status.QUEUED, Status.RETRYING)
    )
    ended = p.hook("subject_ended")(name=name)
    if ended is not None:
        chosen = chosen.exclude(ended)
    if not alone:
        chosen = chosen.filter(suspect=False)  # a suspect runs only alone (engine/blame.py)
    chosen_sql, chosen_params = (
        chosen.order_by().values("pk", "effect_unknown").query.sql_with_params()
    )
    assert chosen_params.count(_SUBJECT_PLACEHOLDER) == 1, chosen_params
    step_model = p.model
    subject_model = step_model._meta.get_field(p.subject).related_model
    step, subject = _Columns(step_model, "s"), _Columns(subject_model, "o")
    quote = connection.ops.quote_name
    sql = _CLAIM_SQL.strip().format(
        table=quote(step_model._meta.db_table),
        chosen=chosen_sql,
        subject_table=quote(subject_model._meta.db_table),
        pk=quote(step_model._meta.pk.column),
        subject_pk=quote(subject_model._meta.pk.column),
        subject_column=quote(step_model._meta.get_field(p.subject).column),
        step_columns=step.sql,
        subject_columns=subject.sql,
    )
    set_params = 6  # status, task_id, claimed_by, run_shared, lease_holder, lease seconds
    return _ClaimStatement(
        sql=sql,
        params=tuple(chosen_params),
        subject_param=set_params + chosen_params.index(_SUBJECT_PLACEHOLDER),
        step=step,
        subject=subject,
        subject_from=2 + len(step.attnames),
    )


@transaction.atomic
def _step_claim(
    *, subject_id: int, name: str, task_id: str, time_limit: float, claimed: list[int]
) -> tuple[Claim, Model]:
    p = pipeline()
    # The database's clock comes with the row: every time this claim writes or compares.
    rows = step_for_update(subject_id=subject_id, name=name).annotate(db_now=Now())
    ended = p.hook("subject_ended")(name=name)
    if ended is not None:
        rows = rows.annotate(subject_ended=ExpressionWrapper(ended, output_field=BooleanField()))
    step = rows.get()
    now = step.db_now
    if step.status == Status.SUCCEEDED:
        return Claim.DONE, step
    if step.status in (Status.FAILED, Status.CANCELLED):
        return Claim.STOP, step
    if step.status == Status.RUNNING and step_lease_alive(step, now=now):
        # A duplicate message while another run holds the step: that one finishes it.
        return Claim.STOP, step
    if ended is not None and step.subject_ended:
        # Its subject ended (cancelled, failed): it never runs again. If an earlier
        # attempt may have had its effect (effect_unknown), its undo is made now.
        step.status = Status.CANCELLED
        step.finished_at = now
        step.save(update_fields=["status", "finished_at"])
        undos_create(subject_id=subject_id)
        return Claim.STOP, step
    parent = p.steps[name].after
    # A step is made ready (queued) only by its parent's success; a pending one has a
    # message from elsewhere (a duplicate, a canvas from before the step records drove
    # the graph) and runs only once its parent has succeeded.
    if (
        parent
        and step.status == Status.PENDING
        and not p.steps_of(subject_id).filter(name=parent, status=Status.SUCCEEDED).exists()
    ):
        return Claim.STOP, step
    if step.status == Status.RUNNING:
        if run_death_judge(step):  # the run that held it died, or gave up
            step.save(update_fields=["crashes", "suspect"])
            return Claim.POISON, step
    if not run_may_start_here(step):
        # A suspect taken by a pool of threads: it runs again alone, in quarantine.
        step_requeue(step, now=now)
        return Claim.STOP, step
    settle = step.effect_unknown
    # Until this run writes its outcome: a run that dies mid-call may have acted.
    step.effect_unknown = True
    step.status = Status.RUNNING
    step.attempts += 1
    step.task_id = task_id
    step.claimed_by = claim_owner()
    step.run_shared = not run_is_alone()
    step.lease_holder = lease_holder()
    step.lease_token += 1  # the row is locked: no other claim reads it meanwhile
    step.lease_expires_at = now + timedelta(seconds=settings.STEP_LEASE_S)
    step.started_at = now
    step.retry_at = None
    step.save(
        update_fields=[
            "status",
            "attempts",
            "crashes",
            "effect_unknown",
            "suspect",
            "task_id",
            "claimed_by",
            "run_shared",
            "lease_holder",
            "lease_token",
            "lease_expires_at",
            "started_at",
            "retry_at",
        ]
    )
    # Held before the commit: a thread of this process that reads the row next must
    # find the lease alive.
    claimed.append(step.pk)
    lease_hold(p.model, step.pk, step.lease_token, time_limit)
    return (Claim.SETTLE if settle else Claim.RUN), step


def step_requeue(step: Model, *, now) -> None:
    """Queue this locked step again and publish it alone after the commit: to quarantine
    when it is suspect (engine/blame.py). `now` is the database's clock."""
    step.status = Status.QUEUED
    # Never reset: the queue's true age and the key's (a row from before every step was
    # queued when made falls back on its creation, which came before its first call).
    step.queued_at = step.queued_at or step.created_at
    step.published_at = now  # not picked again before its deadline comes round
    step.save(update_fields=["status", "crashes", "suspect", "queued_at", "published_at"])
    steps_dispatch_on_commit(
        subject_id=pipeline().subject_id_of(step), names=(step.name,), queue=next_run_queue(step)
    )


@transaction.atomic
def step_abandon(*, pk: int, token: int, time_limit: float) -> Model | None:
    """Give up this process's run of step pk (under lease `token`), still going past its
    time limit: count it on the step (`timeouts`) and queue the step again, so it runs
    elsewhere now and the late run's outcome is fenced off. Return the step when it has
    timed out STEP_MAX_CRASHES times: a dead letter, which the caller records."""
    lease_drop(pipeline().model, pk)  # renewed no more, whatever happens here
    step = step_by_pk_for_update(pk=pk).annotate(db_now=Now()).first()
    if step is None or step.status != Status.RUNNING or step.lease_token != token:
        return None  # its outcome came, or another run took it meanwhile
    step.timeouts += 1
    step.last_error = f"TimeLimitExceeded: run abandoned after {time_limit:g} s"
    step.save(update_fields=["timeouts", "last_error"])
    logger.error(
        "step run abandoned past its time limit of %g s",
        time_limit,
        extra=_log_extra(step, lease_token=token, timeouts=step.timeouts),
    )
    if step.timeouts >= settings.STEP_MAX_CRASHES:
        return step
    step_requeue(step, now=step.db_now)
    return None


def step_lease_alive(step: Model, *, now) -> bool:
    """Whether the run holding this running step lives; now is the database's clock."""
    return lease_alive(
        pipeline().model,
        pk=step.pk,
        holder=step.lease_holder,
        token=step.lease_token,
        expires_at=step.lease_expires_at,
        now=now,
    )


class RunTimedOut(Exception):
    """A step whose runs kept going past their time limit."""

    def __init__(self, step: Model) -> None:
        super().__init__(f"abandoned {step.timeouts} times past its time limit")


class PoisonPill(Exception):
    """A step whose worker process died every time it ran it."""

    def __init__(self, step: Model) -> None:
        super().__init__(f"the worker died {step.crashes} times running this step")


def effect_may_exist(error: BaseException) -> bool:
    """Whether an attempt that ended with this error may have had its effect: unless the
    partner refused or the call surely never went out, it may (no answer came, the time
    limit cut the call off, an unexpected error after it)."""
    return isinstance(error, OutcomeUnknown) or not isinstance(error, StepError)


def step_mark_succeeded(*, step: Model, result: dict) -> bool:
    """Record the run's success and, in the same statement, make ready the steps that
    wait for it (published after it commits); False (and nothing changed) if its lease
    was taken."""
    p = pipeline()
    successors = p.successors[step.name]
    ready: list[str] = []
    lease = Lease(p.model, step.pk, step.lease_token)
    written = lease_write(
        lease,
        f"step {step.name} outcome succeeded",
        write=lambda: _success_statement(step, result, successors, ready),
    )
    if written and ready:
        steps_dispatch_on_commit(subject_id=p.subject_id_of(step), names=tuple(ready))
    if written:
        step.effect_unknown = False  # what the hooks read
        if logger.isEnabledFor(logging.INFO):
            logger.info("step succeeded", extra=_log_extra(step))
        p.hook("step_succeeded")(step=step)
    return written


# A success, fenced by the run's token as lease_write's own UPDATE would be, and its
# successors made ready (steps_ready's rule: pending ones become queued, unpublished),
# in one statement where the ORM took four round trips; it returns whether it was
# written, the successors it made ready, and those already ready and unpublished before
# it (published too when some successor was not pending, as steps_ready does).
_SUCCESS_SQL = """
WITH outcome AS (
    UPDATE {table} SET status = %(succeeded)s, effect_unknown = FALSE, result = %(result)s,
        last_error = '', last_traceback = '', finished_at = STATEMENT_TIMESTAMP(),
        lease_expires_at = NULL
    WHERE {pk} = %(pk)s AND lease_token = %(token)s AND status = %(running)s
    RETURNING 1
), ready AS (
    UPDATE {table} SET status = %(queued)s, published_at = NULL,
        queued_at = COALESCE(queued_at, STATEMENT_TIMESTAMP())
    WHERE {subject} = %(subject)s AND name = ANY(%(names)s) AND status = %(pending)s
        AND EXISTS (SELECT FROM outcome)
    RETURNING name
)
SELECT EXISTS (SELECT FROM outcome), ARRAY(SELECT name FROM ready),
    ARRAY(SELECT name FROM {table} WHERE {subject} = %(subject)s AND name = ANY(%(names)s)
        AND status = %(queued)s AND published_at IS NULL)
"""


def _success_statement(step: Model, result: dict, successors: tuple[str, ...], ready: list):
    """Run _SUCCESS_SQL (PostgreSQL; elsewhere the ORM's update and steps_ready in one
    transaction); put the successors to publish in `ready`; return the rows written."""
    p = pipeline()
    subject_id = p.subject_id_of(step)
    if connection.vendor != "postgresql":
        fenced = Lease(p.model, step.pk, step.lease_token).rows.filter(status=Status.RUNNING)
        with transaction.atomic():
            written = fenced.update(
                status=Status.SUCCEEDED,
                effect_unknown=False,
                result=result,
                last_error="",
                last_traceback="",
                finished_at=Now(),
                lease_expires_at=None,
            )
            if written and successors:
                ready[:] = steps_ready(subject_id=subject_id, names=successors, publish=False)
        return written
    meta = p.model._meta
    quote = connection.ops.quote_name
    sql = _SUCCESS_SQL.strip().format(
        table=quote(meta.db_table),
        pk=quote(meta.pk.column),
        subject=quote(meta.get_field(p.subject).column),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "pk": step.pk,
                "token": step.lease_token,
                "subject": subject_id,
                "names": list(successors),
                "result": meta.get_field("result").get_db_prep_value(result, connection),
                **{status.name.lower(): status.value for status in Status},
            },
        )
        written, made_ready, ready_before = cursor.fetchone()
    if made_ready:
        extra = ready_before if len(made_ready) < len(successors) else []
        ready[:] = list(dict.fromkeys([*made_ready, *extra]))
    return int(written)


def step_mark_retrying(
    *, step: Model, error: BaseException, countdown: float, probe_of: str | None = None
) -> bool:
    """Record a transient failure to be retried in `countdown` seconds. probe_of: the
    partner whose breaker this run probed; its failure is the breaker's, so the attempt is
    given back and the step waits as the breaker's deferred steps do."""
    given_back = {"attempts": F("attempts") - 1} if probe_of else {}
    written = _outcome_write(
        step,
        "retrying",
        status=Status.RETRYING,
        effect_unknown=effect_may_exist(error),
        last_error=f"{DEFERRED}{probe_of} probe failed: {_describe(error)}"
        if probe_of
        else _describe(error),
        last_traceback=_traceback(error),
        retry_at=Now() + timedelta(seconds=countdown),
        **given_back,
    )
    if written:
        logger.warning(
            "step retrying in %.1fs: %s",
            countdown,
            error,
            extra=_log_extra(step, attempt=step.attempts),
        )
    return written


def step_mark_failed(*, step: Model, error: BaseException) -> bool:
    """Record a final failure (a dead letter) and tell the domain, which reads on the step
    whether its effect may be in place all the same (effect_unknown)."""
    written = _outcome_write(
        step,
        "failed",
        status=Status.FAILED,
        effect_unknown=effect_may_exist(error),
        last_error=_describe(error),
        last_traceback=_traceback(error),
        finished_at=Now(),
        retry_at=None,
    )
    if written:
        logger.error("step failed: %s", error, extra=_log_extra(step, attempt=step.attempts))
        pipeline().hook("step_failed")(step=step)
    return written


def _outcome_write(step: Model, outcome: str, *, then=None, **fields) -> bool:
    """Write an outcome fenced by the run's token: only while the step is running under
    the lease this run took (engine/leases.py: retried on a lost connection, the lease
    ended either way); `then()` runs in its transaction when it was written."""
    lease = Lease(pipeline().model, step.pk, step.lease_token)
    written = lease_write(
        lease,
        f"step {step.name} outcome {outcome}",
        rows=lease.table.objects.filter(status=Status.RUNNING),
        then=then,
        **fields,
    )
    if written:
        step.effect_unknown = fields["effect_unknown"]  # what the hooks read
    return written


def _describe(error: BaseException) -> str:
    return f"{error.__class__.__name__}: {error}"[:2000]


def _traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))[-10000:]
