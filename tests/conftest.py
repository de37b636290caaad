import pytest

from config.celery import app
from tests.workers import WorkerProcess, session_database_url


@pytest.fixture
def worker_env(transactional_db, sandbox_url, sandbox, tmp_path, settings):
    """Environment for worker processes: this test's database, Redis db and sandbox."""
    app.control.purge()  # leftovers of earlier tests must not run against this database
    return {
        "DATABASE_URL": session_database_url(),
        "CELERY_BROKER_URL": app.conf.broker_url,
        "SANDBOX_URL": sandbox_url,
        "SHOPFLOW_MEDIA_ROOT": str(tmp_path / "media"),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
        "PIPELINE_RETRY_DELAY_SCALE": "0.01",
        "DATABASE_CONN_MAX_AGE": "0",
    }


@pytest.fixture
def worker(worker_env, tmp_path):
    """One real worker process consuming all four queues."""
    process = WorkerProcess(env=worker_env, log_path=tmp_path / "worker.log").start()
    yield process
    process.stop()
