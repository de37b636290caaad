"""seed_demo: the demo's catalog and users, never a change to a user that exists."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from shop.models import Product

pytestmark = pytest.mark.django_db

User = get_user_model()


def seed_demo() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_leaves_an_existing_admin_with_its_own_password_and_fields():
    User.objects.create_user(
        username="admin", password="changed-by-ops", email="ops@shop.example", is_staff=True
    )

    out = seed_demo()

    admin = User.objects.get(username="admin")
    assert admin.check_password("changed-by-ops") is True
    assert admin.check_password("shopflow-admin") is False
    assert (admin.email, admin.is_staff, admin.is_superuser) == ("ops@shop.example", True, False)
    assert "admin user: admin exists, left as it was\n" in out
    assert "shopflow-admin" not in out


def test_seed_demo_refuses_to_run_in_production_and_changes_nothing(settings):
    settings.ENVIRONMENT = "production"
    User.objects.create_user(username="admin", password="production-secret")

    with pytest.raises(CommandError) as refused:
        seed_demo()

    assert str(refused.value) == (
        "seed_demo creates demo users with documented passwords: "
        "it does not run with SHOPFLOW_ENV=production."
    )
    assert User.objects.get(username="admin").check_password("production-secret") is True
    assert User.objects.count() == 1
    assert Product.objects.count() == 0


def test_seed_demo_creates_the_demo_admin_and_catalog_on_a_fresh_database():
    out = seed_demo()

    admin = User.objects.get()
    assert (admin.username, admin.email, admin.is_staff, admin.is_superuser) == (
        "admin",
        "admin@shopflow.example",
        True,
        True,
    )
    assert admin.check_password("shopflow-admin") is True
    assert Product.objects.count() == 8
    assert "admin user: admin / shopflow-admin\n" in out
