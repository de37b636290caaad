"""The catalog import refuses image URLs the safe fetcher would never fetch (issue 15,
finding 3): other schemes and literal internal addresses are a row error at once; names
are resolved and checked again when the image is downloaded."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shop.csvfiles import Row
from shop.imports import row_parse


def parsed(image_url: str) -> tuple[dict, str | None]:
    values = {"sku": "A-1", "name": "Mug", "price_cents": "100", "stock": "1"}
    return row_parse(Row(number=1, values={**values, "image_url": image_url}))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is an internal address"),
        ("http://127.0.0.1:5555/api/workers", "port 5555 is not fetched (only 80 and 443)"),
        ("http://localhost:8100/payment", "port 8100 is not fetched (only 80 and 443)"),
        ("http://[::1]:6379/", "port 6379 is not fetched (only 80 and 443)"),
        ("http://10.0.0.5/a.png", "10.0.0.5 is an internal address"),
        ("http://metadata.google.internal/", "metadata.google.internal is an internal address"),
    ],
)
def test_an_image_url_at_an_internal_address_is_a_row_error(url, reason):
    fields, error = parsed(url)

    assert fields == {}
    assert error == f"image_url is refused ({reason}): {url!r}"


def test_an_image_url_that_is_not_http_is_a_row_error():
    assert parsed("file:///etc/passwd") == (
        {},
        "image_url is not an http(s) URL: 'file:///etc/passwd'",
    )


def test_a_public_image_url_is_accepted():
    fields, error = parsed("https://img.example/a.png")

    assert (fields["image_url"], error) == ("https://img.example/a.png", None)


@given(st.text(max_size=200))
def test_any_image_url_is_accepted_or_a_row_error_never_an_exception(text):
    fields, error = parsed(text)

    assert (fields == {}) == (error is not None)
