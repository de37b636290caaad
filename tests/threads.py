"""Work started on several threads at once, each on its own database connection."""

import threading
from collections.abc import Callable

from django.db import connection


def at_once(work: Callable[[], object], *, threads: int) -> list[object]:
    """Run `work` on `threads` threads released together; return what each returned."""
    barrier = threading.Barrier(threads)
    results: list[object] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(work())
        finally:
            connection.close()

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return results
