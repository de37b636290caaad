import pytest

from config.celery import app
from harness.processes import process_env, queues_worker
from tests.workers import session_database_url


@pytest.fixture
def worker_env(transactional_db, sandbox_url, sandbox, tmp_path):
    """Environment for worker processes: this test's database, Redis db and sandbox."""
    app.control.purge()  # leftovers of earlier tests must not run against this database
    return process_env(
        database_url=session_database_url(),
        broker_url=app.conf.broker_url,
        sandbox_url=sandbox_url,
        tmp_path=tmp_path,
    )


@pytest.fixture
def worker(worker_env, tmp_path):
    """One real worker process consuming every queue."""
    process = queues_worker(env=worker_env, log_path=tmp_path / "worker.log").start()
    yield process
    process.stop()
