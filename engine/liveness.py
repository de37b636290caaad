"""Telling a dead claim from a live one.

Claims are leases (engine/leases.py, engine/steps.py): the claiming process's `holder`
(where it runs, its pid and a random incarnation id made when it starts or forks), a
fencing token and an expiry computed by PostgreSQL. The process renews the leases it
holds (engine/heartbeat.py), so a lease past its expiry is dead wherever its worker ran.
One faster path: a holder in this very process, or one whose pid is gone from this
kernel and pid namespace, is dead before its lease runs out. It only ever says "dead"
for a process it can see; everything else waits for the lease, on the database's clock.

Every claimed kind uses these leases (engine/leases.py). Nothing decides liveness by
host name and pid alone: the probe only ever shortens a wait the lease bounds anyway.
"""

import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.db import connection
from django.db.models import Model


def claim_owner() -> str:
    """Who holds a claim, for people reading it: "host:pid", and "/thread" in a pool of
    threads. Never judged: liveness is the lease's alone."""
    process = f"{socket.gethostname()}:{os.getpid()}"
    if threading.current_thread() is threading.main_thread():
        return process  # prefork pool processes run their task in their main thread
    return f"{process}/{threading.get_ident()}"


# --- leases ------------------------------------------------------------------------


class _Process:
    """This process's identity as a lease holder and the leases it holds: made again in
    a forked child (a prefork pool process holds its own leases)."""

    def __init__(self) -> None:
        self.holder = f"{_place()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"
        self.lock = threading.Lock()
        # table (a model) -> {row pk: (lease token, time.monotonic() of the claim, the
        # run's time limit in s or None)}
        self.held: dict[type[Model], dict[Any, tuple[int, float, float | None]]] = {}
        # Claims that commit as they are written and whose lease is not counted above
        # yet (lease_claiming).
        self.claiming = 0


def _place() -> str:
    """Where a pid names one process: this host name, kernel boot and pid namespace. Two
    machines (or containers) never share one, even under the same host name."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    seen = f"{socket.gethostname()}|{boot}|{namespace}"
    return hashlib.blake2b(seen.encode(), digest_size=6).hexdigest()


_process = _Process()


def _after_fork() -> None:
    global _process
    _process = _Process()


os.register_at_fork(after_in_child=_after_fork)


def lease_holder() -> str:
    """This process as a lease holder: "<place>/<pid>/<incarnation>"."""
    return _process.holder


@contextmanager
def lease_claiming() -> Iterator[None]:
    """Around a claim that commits as it is written (one statement) and the lease_hold
    that follows it: while one is in flight, a thread of this process that finds a row
    held by this process takes its lease for alive (holder_gone), so it never takes the
    claim being made for a dead one. Nothing waits on it: a claim stuck on the database
    must not stop the heartbeat's sweep (the expiry on the database's clock decides)."""
    with _process.lock:
        _process.claiming += 1
    try:
        yield
    finally:
        with _process.lock:
            _process.claiming -= 1


def lease_hold(
    table: type[Model], pk: Any, token: int, time_limit: float | None = None
) -> tuple[int, float, float | None] | None:
    """Count the lease on row pk of table (with its token) among those this process
    renews, a step's run for at most time_limit seconds from now (engine/heartbeat.py);
    return the entry it replaced (another thread's lease on the row), if any."""
    with _process.lock:
        held = _process.held.setdefault(table, {})
        previous = held.get(pk)
        held[pk] = (token, time.monotonic(), time_limit)
        return previous


def lease_unhold(
    table: type[Model], pk: Any, token: int, previous: tuple[int, float, float | None] | None
) -> None:
    """Undo lease_hold for a claim that was not taken: the entry it replaced is back."""
    with _process.lock:
        held = _process.held.setdefault(table, {})
        if held.get(pk, (None,))[0] != token:
            return  # another thread has held the row since
        if previous is None:
            held.pop(pk, None)
        else:
            held[pk] = previous


def lease_drop(table: type[Model], pk: Any, token: int | None = None) -> None:
    """Stop renewing the lease on row pk of table: its run is over, or gave up. With a
    token, only that lease: a newer one another thread of this process took stays held."""
    with _process.lock:
        held = _process.held.get(table, {})
        if token is None or held.get(pk, (None,))[0] == token:
            held.pop(pk, None)


def leases_held(table: type[Model]) -> dict[Any, tuple[int, float, float | None]]:
    """{pk: (token, monotonic time of the claim, time limit)} of the leases this process
    renews in table."""
    with _process.lock:
        return dict(_process.held.get(table, {}))


def tables_held() -> list[type[Model]]:
    """The tables in which this process holds leases."""
    with _process.lock:
        return [table for table, held in _process.held.items() if held]


def lease_alive(
    table: type[Model],
    *,
    pk: Any,
    holder: str,
    token: int,
    expires_at: datetime | None,
    now: datetime,
) -> bool:
    """Whether the lease on row pk of table still holds; `now` is the database's clock."""
    if expires_at is None or expires_at <= now:
        return False
    return not holder_gone(table, pk=pk, holder=holder, token=token)


def holder_gone(table: type[Model], *, pk: Any, holder: str, token: int) -> bool:
    """The faster path: the holder is a process this one can see, and it no longer holds
    the lease (this process dropped it, or the pid is gone)."""
    place, _, rest = holder.partition("/")
    pid, _, incarnation = rest.partition("/")
    if place != _place_of_this_process() or not pid.isdigit():
        return False  # another machine, container or namespace: only the lease tells
    if holder == _process.holder:
        with _process.lock:
            if _process.claiming:  # maybe this row's claim, its hold not counted yet
                return False
            held = _process.held.get(table, {}).get(pk)
        return held is None or held[0] != token
    if int(pid) == os.getpid():
        return True  # an earlier incarnation with this pid: that process is gone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # A zombie has died, though its parent has not reaped it yet; otherwise running (or
    # its pid taken by another process): the lease decides.
    return _zombie(int(pid))


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"  # the state, after "(command)"


def lease_place() -> str:
    """The first part of every holder in this kernel and pid namespace: "<place>/"."""
    return _process.holder.partition("/")[0] + "/"


def _place_of_this_process() -> str:
    return _process.holder.partition("/")[0]


def queued_age_s(queued_at: datetime | None, *, now: datetime | None) -> float | None:
    """Seconds since a step was first queued, both moments on the database's clock (now:
    read with the row, or database_now()); None when either is not known. What a retry
    budget in time is spent against, a queue's wait, and how old a step's idempotency key
    is at the partner."""
    if queued_at is None or now is None:
        return None
    return (now - queued_at).total_seconds()


def database_now() -> datetime:
    """The database's clock: the one every lease is measured by."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT STATEMENT_TIMESTAMP()"
            if connection.vendor == "postgresql"
            else "SELECT CURRENT_TIMESTAMP"
        )
        value = cursor.fetchone()[0]
    if isinstance(value, str):  # SQLite
        value = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value
