"""Peak memory of a benchmark run."""

import threading


class RssSampler:
    """Samples this process's resident memory every 20 ms (ru_maxrss survives exec on
    Linux, so it would report the parent's peak)."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.start_mb = self.peak_mb = self._rss()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _rss(self) -> float:
        return round(self._process.memory_info().rss / 2**20, 1)

    def _run(self) -> None:
        while not self._stopped.wait(0.02):
            self.peak_mb = max(self.peak_mb, self._rss())

    def stop(self) -> tuple[float, float]:
        self._stopped.set()
        self._thread.join()
        return self.start_mb, max(self.peak_mb, self._rss())
