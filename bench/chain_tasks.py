"""A no-op task for the raw Celery chain that bench/throughput.py measures as its ceiling.

Loaded only into benchmark workers (celery worker --include bench.chain_tasks).
"""

import os
import time

from celery import chain, shared_task
from celery.canvas import Signature

from kit.redis import shared_redis
from orders.pipeline import PIPELINE


def chain_done_key(run: str) -> str:
    return f"bench:throughput:{run}:done"


@shared_task(name="bench.noop")
def noop(run: str, last: bool) -> None:
    """Does nothing; the last task of a chain records when it ended (idempotent: a list push
    the benchmark only counts)."""
    if last:
        shared_redis().rpush(chain_done_key(run), time.time())


def noop_chain(run: str) -> Signature:
    """Six no-op tasks in a row, each on the queue of the pipeline step in its place."""
    last = len(PIPELINE) - 1
    return chain(noop.si(run, n == last).set(queue=spec.queue) for n, spec in enumerate(PIPELINE))


# With BENCH_PROFILE set to a file path, each pool process of a benchmark worker
# profiles its tasks (pyinstrument, wall time from the first task to shutdown) and
# writes the tree (and the session, for `pyinstrument --load`) to that path, suffixed
# with its pid.
if os.environ.get("BENCH_PROFILE"):
    from celery.signals import task_postrun, task_prerun, worker_process_shutdown
    from pyinstrument import Profiler

    _profiler = Profiler(interval=0.0005)

    @task_prerun.connect
    def _profile_resume(**kwargs) -> None:
        if not _profiler.is_running:
            _profiler.start()

    @task_postrun.connect
    def _profile_pause(**kwargs) -> None:
        # Only task time is profiled: stop between tasks, start again at the next one.
        if _profiler.is_running:
            _profiler.stop()

    @worker_process_shutdown.connect
    def _profile_write(**kwargs) -> None:
        if _profiler.last_session is not None:
            path = f"{os.environ['BENCH_PROFILE']}.{os.getpid()}"
            _profiler.last_session.save(f"{path}.pyisession")
            with open(path, "w") as out:
                out.write(_profiler.output_text(unicode=False, color=False))
