"""CSV input of the bulk catalog jobs: checked whole first, then streamed in rows."""

import csv
import io
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from shop.lock_objects import products_for_update
from shop.models import CatalogJob, Product, RowRejection


class MalformedFile(Exception):
    """The file as a whole cannot be used: nothing is written."""


@dataclass(frozen=True)
class Row:
    number: int  # 1-based data row (the header is row 0)
    values: dict[str, str]


@dataclass(frozen=True)
class Columns:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


# Opens the file for reading in binary, each call afresh: a stored file opens through its
# storage (`functools.partial(storage.open, name, "rb")`), which need have no path (S3).
Opener = Callable[[], IO[bytes]]


@contextmanager
def _text(opener: Opener) -> Iterator[io.TextIOWrapper]:
    with opener() as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as file:
        yield file


def csv_file_check(opener: Opener, *, columns: Columns) -> int:
    """Read the whole file once: refuse a wrong encoding, wrong columns or no rows.

    Returns the number of data rows.
    """
    try:
        with _text(opener) as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header is None:
                raise MalformedFile("The file is empty.")
            names = [c.strip().lower() for c in header]
            missing = [c for c in columns.required if c not in names]
            unknown = [c for c in names if c not in columns.required + columns.optional]
            if missing or unknown:
                expected = ", ".join(columns.required)
                if columns.optional:
                    expected += f" and optionally {', '.join(columns.optional)}"
                raise MalformedFile(
                    f"Wrong columns: missing {', '.join(missing) or 'none'}; "
                    f"unknown {', '.join(unknown) or 'none'}. Expected {expected}."
                )
            rows = sum(1 for _ in reader)
    except UnicodeDecodeError as exc:
        raise MalformedFile(f"The file is not UTF-8 text (byte {exc.start}).") from exc
    except csv.Error as exc:
        raise MalformedFile(f"The file is not valid CSV: {exc}.") from exc
    if rows == 0:
        raise MalformedFile("The file has a header but no rows.")
    return rows


def csv_rows(opener: Opener, *, skip: int) -> Iterator[Row]:
    """The data rows after the first `skip`, as dicts by lower-cased column name."""
    with _text(opener) as file:
        reader = csv.reader(file)
        names = [c.strip().lower() for c in next(reader)]
        for number, values in enumerate(itertools.islice(reader, skip, None), start=skip + 1):
            yield Row(number, dict(itertools.zip_longest(names, values, fillvalue="")))


def whole_number(values: dict[str, str], field: str) -> tuple[int | None, str | None]:
    """A column's value as a whole number from 0 to 2e9, or the reason it is not one."""
    text = values[field]
    if not text.isdigit() or int(text) > 2_000_000_000:
        return None, f"{field} must be a whole number from 0 to 2000000000, got {text!r}"
    return int(text), None


def sku_batch_apply(
    *,
    job: CatalogJob,
    batch: list[Row],
    field: str,
    update: Callable[[list[Product], dict[str, int]], None],
) -> list[RowRejection]:
    """Read a batch of (sku, whole number) rows, lock the products they name in id order,
    and let `update` change them; return the bad rows and the unknown SKUs as rejections."""
    numbers: dict[str, tuple[Row, int]] = {}
    rejections = []
    for row in batch:
        sku = row.values.get("sku", "").strip()
        number, reason = whole_number(row.values, field)
        if not sku:
            reason = "sku is empty"
        if reason:
            rejections.append(RowRejection(job=job, row=row.number, sku=sku[:64], reason=reason))
        else:
            numbers[sku] = (row, number)  # the last row for a SKU wins
    products = list(products_for_update(skus=numbers))
    update(products, {sku: number for sku, (_, number) in numbers.items()})
    known = {product.sku for product in products}
    return rejections + [
        RowRejection(job=job, row=row.number, sku=sku[:64], reason="unknown SKU")
        for sku, (row, _) in numbers.items()
        if sku not in known
    ]
