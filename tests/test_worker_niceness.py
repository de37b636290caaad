"""Workers give way to the web process on a machine they share: the checkout answers at
once while the pipeline takes whatever CPU is left (config/celery.py, WORKER_NICENESS)."""

import psutil
import pytest

from harness.processes import procfile_worker

pytestmark = pytest.mark.system


def _niceness_of_every_thread(pid: int) -> list[int]:
    """The nice value of each thread of the process and of its children (Linux keeps one
    per thread: a thread started later inherits its creator's)."""
    process = psutil.Process(pid)
    return [
        psutil.Process(thread.id).nice()
        for member in (process, *process.children(recursive=True))
        for thread in member.threads()
    ]


@pytest.mark.parametrize("line", ["worker_high", "worker_quarantine"])  # threads, prefork
def test_a_worker_busy_with_the_pipeline_never_takes_cpu_ahead_of_a_checkout(
    worker_env, tmp_path, line
):
    worker = procfile_worker(line, env=worker_env, log_dir=tmp_path).start()
    try:
        # Started: its pool's threads (8) or process (1) beside the main thread.
        niceness = _niceness_of_every_thread(worker.pid)

        assert len(niceness) > 2
        assert set(niceness) == {10}  # the default
    finally:
        worker.stop()
