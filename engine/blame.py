"""Whom a worker's death is blamed on: poison pills in pools of threads.

A run ends without an outcome when its process dies (SIGKILL, the OOM killer, a crash in
a C library). One of the steps the process was running may have caused it, a poison pill
that kills every process that runs it; the others only ran beside it. Counting a crash
against every running step of the dead process dead-letters the innocent ones after
STEP_MAX_CRASHES rounds: in a pool of 8 threads, each death of the pill takes up to 7
others with it, a payment among them.

Nobody outside can tell which run killed the process. What is known is whether the run
was alone in it, and that is decided once, when the step is claimed: a run in a process
that runs one step at a time (a prefork pool process or the solo pool, both run their
task in the main thread) is alone; a run in any other thread shares its process with a
pool of threads (`run_shared` on the step record). So:

- the death of a run that was alone is its own: `crashes` += 1, and at STEP_MAX_CRASHES
  the step is dead-lettered as a poison pill;
- the death of a shared run blames nobody: the step becomes `suspect` and runs again
  alone, on the quarantine queue, which a prefork worker of concurrency 1 consumes (the
  Procfile's worker_quarantine). There a pill kills only its own pool process, is blamed,
  and is dead-lettered after STEP_MAX_CRASHES deaths; the innocent simply succeed, with
  no crash counted;
- a suspect step never runs beside others again: a message for it taken by a pool of
  threads (a redelivery, a duplicate, a retry) sends it to quarantine instead.

Other designs, and why not: counting the dead process's running steps when its death is
found ("blame it if it was the only one") races with the sweepers that re-queue those
steps one by one, and a survivor of the count would be blamed for the others; a process
per run (prefork everywhere) costs the pipeline's I/O-bound queues three times the CPU
and fourteen times the memory (bench/throughput.py); blaming everyone with a higher
limit only dead-letters the innocent later.

What it costs: after a pool of threads dies, its steps run one at a time through
quarantine, each at partner latency (100-500 ms a call): a whole worker_high of 8 is
through in a few seconds, inside the high queue's 30 s. An outside kill of a prefork pool
process is still counted against its step; STEP_MAX_CRASHES (3) leaves room for two.
"""

import threading

from django.conf import settings
from django.db.models import Model

from config.queues import QUARANTINE


def run_is_alone() -> bool:
    """Whether a run in this thread is its process's only one: prefork and solo pools run
    their task in the main thread, a pool of threads in others."""
    return threading.current_thread() is threading.main_thread()


def run_death_judge(step: Model) -> bool:
    """Judge the death of the run that held this (locked, running) step, on the step:
    blamed when it ran alone, suspected when it ran beside others. True when it is now a
    poison pill."""
    if step.run_shared:
        step.suspect = True
        return False
    step.crashes += 1
    return step.crashes >= settings.STEP_MAX_CRASHES


def run_may_start_here(step: Model) -> bool:
    """A suspect step runs only where it is alone."""
    return not step.suspect or run_is_alone()


def next_run_queue(step: Model) -> str | None:
    """Where the step's next message goes: quarantine for a suspect, else its own queue."""
    return QUARANTINE if step.suspect else None
