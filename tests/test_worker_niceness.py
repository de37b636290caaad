"""Workers give way to the web process on a machine they share: the checkout answers at
once while the pipeline takes the CPU that is left (kit/priority.py, WORKER_NICENESS)."""

import os
from pathlib import Path

import psutil
import pytest

from harness.processes import procfile_worker

pytestmark = pytest.mark.system


def _niceness_of_every_thread(pid: int) -> list[int]:
    """The nice value of each thread of the process and of its children (Linux keeps one
    per thread)."""
    process = psutil.Process(pid)
    return [
        psutil.Process(thread.id).nice()
        for member in (process, *process.children(recursive=True))
        for thread in member.threads()
    ]


def _autogroup_niceness(pid: int) -> int:
    """The nice value of the process's scheduling group ("/autogroup-85 nice 10")."""
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


@pytest.mark.parametrize("line", ["worker_high", "worker_quarantine"])  # threads, prefork
def test_every_thread_and_pool_process_of_a_worker_and_its_session_run_below_the_web_server(
    worker_env, tmp_path, line
):
    # 10 by default; never above what this run was started at (nice -n 15 make test).
    expected = max(10, os.getpriority(os.PRIO_PROCESS, 0))
    worker = procfile_worker(line, env=worker_env, log_dir=tmp_path).start()
    try:
        # Started: its pool's threads (8) or process (1) beside the main thread.
        niceness = _niceness_of_every_thread(worker.pid)

        assert len(niceness) > 2
        assert set(niceness) == {expected}
        # The harness starts each process in a session of its own, a scheduling group of
        # its own where autogroups are on: a nice value ranks threads within their group
        # only, so the group is lowered too.
        if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
            assert _autogroup_niceness(worker.pid) == expected
    finally:
        worker.stop()
