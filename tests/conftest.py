import pytest

from config.celery import app
from tests.workers import WorkerProcess, process_env


@pytest.fixture
def worker_env(transactional_db, sandbox_url, sandbox, tmp_path):
    """Environment for worker processes: this test's database, Redis db and sandbox."""
    app.control.purge()  # leftovers of earlier tests must not run against this database
    return process_env(broker_url=app.conf.broker_url, sandbox_url=sandbox_url, tmp_path=tmp_path)


@pytest.fixture
def worker(worker_env, tmp_path):
    """One real worker process consuming all four queues."""
    process = WorkerProcess(env=worker_env, log_path=tmp_path / "worker.log").start()
    yield process
    process.stop()
