"""The processes a test starts run against this session's database."""

from django.db import connection


def session_database_url() -> str:
    """The URL of the database this test session uses, for processes we start."""
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("system tests need PostgreSQL: set DATABASE_URL (make test does)")
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
