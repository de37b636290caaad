import json

import pytest

from orders.models import Order
from tests.factories import checkout_body

pytestmark = pytest.mark.django_db

ADDRESS = checkout_body()["shipping_address"]


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"email": None}, {"email": ["This field is required."]}),
        ({"email": "not-an-email"}, {"email": ["Enter a valid email address."]}),
        ({"email": 42}, {"email": ["Enter a valid email address."]}),
        ({"items": None}, {"items": ["This field is required."]}),
        ({"items": []}, {"items": ["Must be a non-empty list."]}),
        ({"items": "MUG-001"}, {"items": ["Must be a non-empty list."]}),
        ({"items": [{"sku": "A", "quantity": 1}] * 51}, {"items": ["At most 50 items per order."]}),
        ({"items": ["MUG-001"]}, {"items[0]": ["Must be an object with sku and quantity."]}),
        (
            {"items": [{"quantity": 1}]},
            {"items[0].sku": ["Must be a non-empty string of at most 64 characters."]},
        ),
        (
            {"items": [{"sku": "A", "quantity": 0}]},
            {"items[0].quantity": ["Must be an integer between 1 and 100."]},
        ),
        (
            {"items": [{"sku": "A", "quantity": "2"}]},
            {"items[0].quantity": ["Must be an integer between 1 and 100."]},
        ),
        (
            {"items": [{"sku": "A", "quantity": True}]},
            {"items[0].quantity": ["Must be an integer between 1 and 100."]},
        ),
        (
            {"items": [{"sku": "A", "quantity": 101}]},
            {"items[0].quantity": ["Must be an integer between 1 and 100."]},
        ),
        (
            {"items": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}]},
            {"items[1].sku": ["Duplicate SKU 'A'; combine the quantities."]},
        ),
        ({"shipping_address": None}, {"shipping_address": ["This field is required."]}),
        ({"shipping_address": "London"}, {"shipping_address": ["Must be an object."]}),
        (
            {"shipping_address": {**ADDRESS, "city": ""}},
            {"shipping_address.city": ["This field is required."]},
        ),
        (
            {"shipping_address": {**ADDRESS, "country": "GBR"}},
            {"shipping_address.country": ["Must be a two-letter ISO country code."]},
        ),
        (
            {"shipping_address": {**ADDRESS, "line1": "x" * 201}},
            {"shipping_address.line1": ["Must be a string of at most 200 characters."]},
        ),
        ({"payment_token": None}, {"payment_token": ["This field is required."]}),
        (
            {"payment_token": "  "},
            {"payment_token": ["Must be a non-empty string of at most 128 characters."]},
        ),
    ],
)
def test_bad_checkout_input_is_refused_with_400_naming_the_field_and_reason(
    client, overrides, errors
):
    body = {**checkout_body(("A", 1)), **overrides}
    body = {key: value for key, value in body.items() if value is not None}

    response = client.post(
        "/api/v1/checkout", data=json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json() == {"errors": errors}
    assert Order.objects.count() == 0


def test_every_problem_is_reported_at_once(client):
    body = {"email": "x", "items": [], "shipping_address": {}, "payment_token": ""}

    response = client.post(
        "/api/v1/checkout", data=json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "email": ["Enter a valid email address."],
        "items": ["Must be a non-empty list."],
        "shipping_address.name": ["This field is required."],
        "shipping_address.line1": ["This field is required."],
        "shipping_address.city": ["This field is required."],
        "shipping_address.postal_code": ["This field is required."],
        "shipping_address.country": ["This field is required."],
        "payment_token": ["Must be a non-empty string of at most 128 characters."],
    }


def test_a_json_array_body_is_refused(client):
    response = client.post("/api/v1/checkout", data="[]", content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"errors": {"body": ["Expected a JSON object."]}}


def test_strings_no_database_can_store_are_refused_naming_each_field(client):
    body = checkout_body(("A\x00", 1), email="a\x00@example.com")
    body["shipping_address"]["city"] = "Lon\ud800don"  # an unpaired surrogate

    response = client.post(
        "/api/v1/checkout", data=json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "errors": {
            "email": ["Must be text without NUL characters or unpaired surrogates."],
            "items[0].sku": ["Must be text without NUL characters or unpaired surrogates."],
            "shipping_address.city": [
                "Must be text without NUL characters or unpaired surrogates."
            ],
        }
    }


def test_json_nested_too_deeply_is_refused_with_400(client):
    response = client.post(
        "/api/v1/checkout", data="[" * 100_000 + "]" * 100_000, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json() == {"errors": {"body": ["Invalid JSON: nested too deeply."]}}


def test_a_token_with_a_nul_character_finds_no_order(client):
    assert client.get("/api/v1/orders/ab%00cd").status_code == 404
    assert client.get("/orders/ab%00cd/").status_code == 404


def test_an_email_longer_than_the_column_is_refused_with_400_not_a_500(client):
    body = checkout_body(("A", 1), email="a" * 243 + "@example.com")

    response = client.post(
        "/api/v1/checkout", data=json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json() == {"errors": {"email": ["Must be at most 254 characters."]}}


def test_unknown_keys_are_ignored_even_with_unstorable_text(client):
    body = {**checkout_body(("NOPE", 1)), "note": "\x00", "email": [[[[]]]]}

    response = client.post(
        "/api/v1/checkout", data=json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json() == {"errors": {"email": ["Enter a valid email address."]}}
