"""Lowering a process's CPU priority so the work beside it goes first (Linux, where it
matters; elsewhere the whole process)."""

import contextlib
import os
from pathlib import Path

TASKS = Path("/proc/self/task")
AUTOGROUP = Path("/proc/self/autogroup")


def cpu_priority_lower(*, niceness: int) -> None:
    """Run this process at `niceness` at least, never raising a priority (a supervisor
    may have lowered it more).

    Linux keeps a nice value per thread: each thread there is now is lowered, and every
    thread and child process started after this inherits it. That ranks it among the
    processes of its own scheduling group only: with autogroups (a session each, as a
    process started with setsid, like our harness's, has), its group is lowered too when
    it leads its session, so the group gives way to the others. Under systemd or in a
    container a cgroup's CPU weight does this instead (CPUWeight=, CPU requests)."""
    threads = [int(tid) for tid in os.listdir(TASKS)] if TASKS.is_dir() else [0]
    for tid in threads:
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            if niceness > os.getpriority(os.PRIO_PROCESS, tid):
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
    if AUTOGROUP.exists() and os.getsid(0) == os.getpid():
        group_niceness = int(AUTOGROUP.read_text().split()[-1])
        if niceness > group_niceness:
            AUTOGROUP.write_text(str(niceness))
