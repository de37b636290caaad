"""A wrong clock for one test worker (harness.processes.Worker with clock_offset_s,
loaded with celery worker --include harness.clock): this process's wall clock reads
SHOPFLOW_CLOCK_OFFSET_S seconds off, as on a machine whose clock is wrong: time.time()
(and so its log lines' times) and Django's timezone.now(). Its monotonic clock stays
true, as a real machine's does.

Why not Debian's faketime: with libfaketime 0.9.10 a Python thread's timed wait
(threading.Event.wait, which Celery's pools and timers use) never returns, and with
FAKETIME_DONT_FAKE_MONOTONIC time.sleep fails with EINVAL.
"""

import os
import time
from datetime import timedelta

from django.utils import timezone

OFFSET_S = float(os.environ["SHOPFLOW_CLOCK_OFFSET_S"])

_time, _time_ns, _now = time.time, time.time_ns, timezone.now

time.time = lambda: _time() + OFFSET_S
time.time_ns = lambda: _time_ns() + int(OFFSET_S * 1e9)
timezone.now = lambda: _now() + timedelta(seconds=OFFSET_S)
