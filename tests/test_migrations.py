"""The migrations are one line per app and match the models: two engineers landing a
migration of the same number left orders with two leaves, and every `migrate` refused."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_every_app_has_one_line_of_migrations_that_matches_its_models():
    # Raises on conflicting leaves, exits 1 on a model change no migration records.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
