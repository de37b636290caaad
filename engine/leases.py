"""One lease mechanism for everything that is claimed: pipeline steps, outbox emails,
exports, bulk jobs, due rows and periodic-job ticks.

A row of a `Leased` model is held by at most one run at a time. The run takes its lease
(`lease_take`): this process as holder (engine/liveness.py), a fencing token one above
the row's last one, and an expiry STEP_LEASE_S ahead on the database's clock (`now()`),
never a worker's. The process's heartbeat thread renews every lease it holds, one
statement per table (`leases_extend`). A lease past its expiry is dead wherever its
worker ran; a holder this process can see (this process, or a pid gone from this
kernel) is dead before that, the faster path.

Every write of the run's outcome or progress carries its token (`lease_write`): a stale
run, whose lease lapsed and was taken by another, changes nothing, and that is logged.
A write that loses its connection is tried again (it is idempotent); one that cannot be
made raises LeaseWriteFailed and leaves the lease to lapse, never held by a live
process.
"""

import logging
import operator
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import reduce
from typing import Any, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, migrations, models, transaction
from django.db.models import F, Model, Q, QuerySet
from django.db.models.functions import Greatest, Now

from engine.liveness import (
    holder_gone,
    lease_drop,
    lease_hold,
    lease_holder,
    lease_unhold,
    leases_held,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Pauses between tries of a write that lost its connection (a failover takes a few
# seconds); then the run gives up and its lease lapses.
WRITE_DELAYS_S = (0.5, 1, 2, 4)


class Leased(models.Model):
    """A row that runs claim: its lease's holder, fencing token and expiry."""

    # The holding process (engine/liveness.py: "<place>/<pid>/<incarnation>"), kept after
    # the lease ends for people reading it.
    lease_holder = models.CharField(max_length=64, blank=True)
    # Grows with every claim; every write of the claim's outcome carries it.
    lease_token = models.PositiveBigIntegerField(default=0)
    # On the database's clock; empty when no run holds the row.
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


@dataclass(frozen=True)
class Lease:
    """A claim this run holds: the row and the token its writes carry."""

    table: type[Model]
    pk: Any
    token: int

    @property
    def rows(self) -> QuerySet:
        """The row, while this lease still holds it."""
        return self.table._default_manager.filter(pk=self.pk, lease_token=self.token)


class LeaseWriteFailed(Exception):
    """The database kept refusing a write under a lease: the run gives up and the lease
    lapses, so the work is taken again (idempotently) elsewhere."""


def lease_free() -> Q:
    """Rows no live lease holds, on the database's clock."""
    return Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=Now())


def lease_take(
    table: type[Model],
    *,
    pk: Any,
    claimable: Q | None = None,
    hold_s: float | None = None,
    **fields,
) -> Lease | None:
    """Take the lease on row pk if it is `claimable` and no live lease holds it, writing
    `fields` with it; None when another run holds it (or it is not claimable).

    One conditional UPDATE on the token last seen, so of two runs at once one wins. The
    lease lasts `hold_s` (at least STEP_LEASE_S) from the database's `now()`."""
    rows = table._default_manager.filter(pk=pk)
    seen = rows.values_list("lease_holder", "lease_token").first()
    if seen is None:
        return None
    holder, token = seen
    free = lease_free()
    if holder and holder_gone(table, pk=pk, holder=holder, token=token):
        # Its holder is gone: no need to wait for the expiry, as long as the row is still
        # as seen (a holder that let go meanwhile, as a tick kept for its interval does,
        # wrote another holder under the same token).
        free |= Q(lease_token=token, lease_holder=holder)
    lease = Lease(table, pk, token + 1)
    # Held before it is written: a thread of this process that reads the row next must
    # find the lease alive.
    previous = lease_hold(table, pk, lease.token)
    seconds = max(hold_s or 0, settings.STEP_LEASE_S)
    taken = rows.filter(free, claimable or Q(), lease_token=token).update(
        lease_holder=lease_holder(),
        lease_token=lease.token,
        lease_expires_at=Now() + timedelta(seconds=seconds),
        **fields,
    )
    if not taken:
        lease_unhold(table, pk, lease.token, previous)  # a live lease of ours stays held
        return None
    return lease


def leases_take(table: type[Model], *, pks: list[Any], **fields) -> list[Lease]:
    """Take the leases on rows that the caller's transaction has locked and found free (due
    rows, a batch at a time), writing `fields` with them: one UPDATE."""
    if not pks:
        return []
    rows = table._default_manager.filter(pk__in=pks)
    tokens = dict(rows.values_list("pk", "lease_token"))
    leases = [Lease(table, pk, tokens[pk] + 1) for pk in pks]
    for lease in leases:  # held before they are written, as in lease_take
        lease_hold(table, lease.pk, lease.token)  # free rows: no live lease of ours
    try:
        rows.update(
            lease_holder=lease_holder(),
            lease_token=F("lease_token") + 1,
            lease_expires_at=Now() + timedelta(seconds=settings.STEP_LEASE_S),
            **fields,
        )
    except BaseException:
        for lease in leases:
            lease_drop(table, lease.pk, lease.token)
        raise
    return leases


def lease_write(
    lease: Lease,
    what: str,
    *,
    rows: QuerySet | None = None,
    final: bool = True,
    then: Callable[[], None] | None = None,
    write: Callable[[], int] | None = None,
    **fields,
) -> bool:
    """Write `fields` on the leased row if the lease still holds it; False (nothing
    changed, logged) when a newer claim took it. `rows` narrows the row further (a
    status, for instance). A final write ends the lease: it is no longer renewed, and
    the row is free at once unless `fields` set its expiry. `then()`, when given, runs
    in the write's transaction once it was written (what the outcome makes follow).
    `write()`, when given, is the write itself, a statement of the caller's that carries
    the fence (the lease's row and token) and ends the lease when final, and returns
    the rows it wrote: a hot path's write in one round trip (engine/steps.py).

    Retried when the connection fails (the write is idempotent); after the last try it
    raises LeaseWriteFailed and the lease is left to lapse."""
    if write is None:
        fenced = lease.rows if rows is None else rows & lease.rows
        # A final write frees the row; any other renews the lease, so a run that writes
        # as it goes keeps it even in a process without a heartbeat (a command run here).
        fields.setdefault("lease_expires_at", None if final else _renewed())

        def write() -> int:
            return _fenced_update(fenced, fields, then)

    written = bool(lease_retried(write, what=what, lease=lease))
    if final or not written:
        lease_drop(lease.table, lease.pk, lease.token)
    if not written:
        _stale(lease, what)
    return written


def lease_locked(lease: Lease, what: str) -> Model | None:
    """The leased row locked for the rest of the transaction, while this lease holds it;
    None (logged, the lease no longer renewed) when a newer claim took it. What the
    transaction writes is fenced: no claim can take the row until it commits."""
    row = lease.rows.select_for_update().first()
    if row is None:
        lease_drop(lease.table, lease.pk, lease.token)
        _stale(lease, what)
    return row


def lease_end(lease: Lease) -> None:
    """Stop renewing a lease whose run ends without a final write (it was killed, or lost
    the lease): it lapses, or the faster path finds it dropped."""
    lease_drop(lease.table, lease.pk, lease.token)


@contextmanager
def lease_running(lease: Lease) -> Iterator[Lease]:
    """Run a claim's work under its lease: an error frees the row for the next run at once
    (if the lease still holds it); a kill leaves the lease to lapse; either way it is no
    longer renewed."""
    try:
        yield lease
    except Exception:
        lease_write(lease, "lease given back after an error")
        raise
    finally:
        lease_end(lease)


def _stale(lease: Lease, what: str) -> None:
    logger.warning(
        "stale run: %s not written, a newer claim holds the row", what, extra=_log_extra(lease)
    )


def lease_retried(work: Callable[[], T], *, what: str, lease: Lease) -> T:
    """Run a write (or a transaction of them) under a lease, again after each of
    WRITE_DELAYS_S while the connection fails; then raise LeaseWriteFailed and leave the
    lease to lapse."""
    for delay in (*WRITE_DELAYS_S, None):
        try:
            return work()
        except (OperationalError, InterfaceError) as exc:
            if delay is None:
                logger.error(
                    "%s not written, leaving the lease to lapse: %s",
                    what,
                    exc,
                    extra=_log_extra(lease),
                )
                lease_drop(lease.table, lease.pk, lease.token)
                raise LeaseWriteFailed(f"{what} not written: {exc}") from exc
            logger.warning(
                "%s not written, again in %.1fs: %s", what, delay, exc, extra=_log_extra(lease)
            )
            if not connection.in_atomic_block:
                connection.close()  # the next query opens a new connection
            time.sleep(delay)
    raise AssertionError("unreachable")


def _fenced_update(rows: QuerySet, fields: dict, then: Callable[[], None] | None = None) -> int:
    if then is None:
        return rows.update(**fields)
    with transaction.atomic():
        written = rows.update(**fields)
        if written:
            then()
    return written


def leases_extend(table: type[Model], pks: list[Any] | None = None) -> int:
    """Renew this process's leases in one table by STEP_LEASE_S on the database's clock, in
    one statement (only those in pks, if given); return how many. A lease held for
    longer (a periodic job's tick) keeps its later expiry."""
    held = leases_held(table)
    if pks is not None:
        held = {pk: held[pk] for pk in pks if pk in held}
    if not held:
        return 0
    mine = reduce(operator.or_, (Q(pk=pk, lease_token=token) for pk, (token, *_) in held.items()))
    return (
        table._default_manager.filter(mine, lease_holder=lease_holder())
        .exclude(lease_expires_at__isnull=True)  # ended: a renewal must not revive it
        .update(lease_expires_at=_renewed())
    )


def _renewed() -> Greatest:
    return Greatest(F("lease_expires_at"), Now() + timedelta(seconds=settings.STEP_LEASE_S))


def old_claims_leased(
    app_label: str,
    model_name: str,
    *,
    status: str | None = None,
    window_s: float | None = None,
    claimed_at: str = "claimed_at",
    **only: Any,
) -> migrations.RunPython:
    """A data migration for a table that claimed with a claim time (and "host:pid") before
    it had leases: each row claimed then (in `status`, and matching `only`, if given) is
    leased until its claim time plus the old scheme's window (the hard task time limit
    unless `window_s` says), as long as the old scheme let another host's claim live, so a
    run of the old release still at work is not raced. A row with no claim time is free."""

    def lease(apps, schema_editor) -> None:
        rows = apps.get_model(app_label, model_name)._default_manager
        claimed = rows.filter(**{f"{claimed_at}__isnull": False}, **only)
        if status is not None:
            claimed = claimed.filter(status=status)
        window = timedelta(seconds=window_s or settings.CELERY_TASK_TIME_LIMIT)
        claimed.update(lease_expires_at=F(claimed_at) + window)

    return migrations.RunPython(lease, migrations.RunPython.noop)


def _log_extra(lease: Lease) -> dict:
    return {"table": lease.table._meta.label, "row": lease.pk, "lease_token": lease.token}
