"""Validation of what enters the store: offer fields (exact prices, ISO currencies, JSON lists)
and vectors (shape, dimension, finite, normalised). Nothing is written here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from cumpair.index import metadata
from cumpair.index.records import (
    MAX_VECTORS_PER_OFFER,
    InvalidOfferError,
    InvalidVectorError,
    OfferRecord,
    condition_name,
    utcnow,
)
from cumpair.index.store.base import StoreBase, _Space

_F32 = np.dtype(np.float32)


@dataclass(frozen=True)
class SpaceBatch:
    """A batch's vectors of one space, checked, in one matrix: item ``i`` gave rows
    ``offsets[i]:offsets[i + 1]`` (an item with ``given[i]`` false left the space out)."""

    matrix: np.ndarray  # (rows, dim) float32, C-contiguous, finite (unit length if normalised)
    offsets: np.ndarray  # int64, one more than the items
    given: np.ndarray  # bool per item

    def rows(self, i: int) -> np.ndarray:
        return self.matrix[self.offsets[i] : self.offsets[i + 1]]


class Validation(StoreBase):
    """Validation of what enters the store (a part of `ProductStore`)."""

    def _check_offers(self, offers: list[OfferRecord]) -> tuple[list[metadata.OfferRow], list[str]]:
        """Per offer its column values (exact price, upper-case currency) and UTC sighting time.

        Offers without ``seen_at`` share one "now"; currency and condition checks are made
        once per distinct value. The first bad offer raises `InvalidOfferError`.
        """
        now = utcnow().isoformat()
        currencies: dict[Any, str | None] = {None: None}
        conditions: dict[Any, str | None] = {None: None}
        rows: list[metadata.OfferRow] = []
        seen: list[str] = []
        for offer in offers:
            if not isinstance(offer, OfferRecord):
                raise InvalidOfferError(f"expected OfferRecord, got {type(offer).__name__}")
            for name, value in (("shop", offer.shop), ("url", offer.url)):
                if not isinstance(value, str) or not value or value.isspace():
                    raise InvalidOfferError(
                        f"offer.{name} must be a non-empty string, got {value!r}"
                    )
            price = offer.price
            if price is not None:
                price = _exact_price(price)
            try:
                currency = currencies[offer.currency]
            except (KeyError, TypeError):  # an unhashable value is refused by the check
                currency = currencies[offer.currency] = _currency_code(offer.currency)
            try:
                condition = conditions[offer.condition]
            except (KeyError, TypeError):
                try:
                    condition = conditions[offer.condition] = condition_name(offer.condition)
                except ValueError as exc:
                    raise InvalidOfferError(f"offer.condition: {exc}") from None
            if offer.shipping or not isinstance(offer.shipping, list | tuple):
                _check_objects(offer.shipping, "shipping")
            conflicts = offer.spec_conflicts
            if conflicts or not isinstance(conflicts, list | tuple):
                _check_objects(conflicts, "spec_conflicts", required="field")
            try:
                rows.append(metadata.offer_row(offer, price, currency, condition))
            except (TypeError, ValueError) as exc:
                raise InvalidOfferError(f"offer fields cannot be stored: {exc}") from exc
            seen.append(now if offer.seen_at is None else _utc_iso(offer.seen_at))
        return rows, seen

    def _check_batch_vectors(self, batch: list[Mapping[str, np.ndarray]]) -> dict[str, SpaceBatch]:
        """Every item's vectors, shaped, checked and normalised with one NumPy pass per space.

        Each value is ``(n, dim)`` or ``(dim,)``; float32 arrays are taken as they are (one
        copy, into the batch's matrix), anything else is converted first.
        """
        # per space: the space, its dimension, and per item giving it: values, index, row count
        found: dict[str, tuple[_Space, int, list[np.ndarray], list[int], list[int]]] = {}
        for n, vectors in enumerate(batch):
            if type(vectors) is not dict and not isinstance(vectors, Mapping):
                raise InvalidVectorError("vectors must map a space name to an array")
            for name, value in vectors.items():
                if (entry := found.get(name)) is None:
                    space = self._space(name)
                    entry = found[name] = (space, space.spec.dim, [], [], [])
                space, dim, values, items, counts = entry
                if not (
                    type(value) is np.ndarray
                    and value.dtype == _F32
                    and (value.shape == (dim,) or (value.ndim == 2 and value.shape[1] == dim))
                ):
                    value = self._shaped(space, value, what=f"vectors[{name!r}]")
                rows = 1 if value.ndim == 1 else len(value)
                if rows > MAX_VECTORS_PER_OFFER:
                    raise InvalidVectorError(
                        f"vectors[{name!r}]: {rows} vectors, at most {MAX_VECTORS_PER_OFFER}"
                    )
                values.append(value if value.ndim == 1 else value.ravel())
                items.append(n)
                counts.append(rows)
        checked: dict[str, SpaceBatch] = {}
        for name, (space, dim, values, items, counts) in found.items():
            matrix = np.concatenate(values).reshape(-1, dim)  # a copy we own
            try:
                self._finite_unit(space, matrix, "")
            except InvalidVectorError:  # find the culprit for the message
                for value in values:
                    self._finite_unit(space, value.reshape(-1, dim).copy(), f"vectors[{name!r}]")
                raise
            per_item = np.zeros(len(batch), dtype=np.int64)
            per_item[items] = counts
            given = np.zeros(len(batch), dtype=bool)
            given[items] = True
            offsets = np.zeros(len(batch) + 1, dtype=np.int64)
            per_item.cumsum(out=offsets[1:])
            checked[name] = SpaceBatch(matrix, offsets, given)
        return checked

    def _as_matrix(self, space: _Space, value: Any, what: str) -> np.ndarray:
        matrix = np.array(self._shaped(space, value, what), copy=True)
        return self._finite_unit(space, matrix, what)

    def _shaped(self, space: _Space, value: Any, what: str) -> np.ndarray:
        """`value` as float32 ``(n, dim)`` (no copy when it already is one)."""
        try:
            matrix = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidVectorError(f"{what}: not a numeric array ({exc})") from None
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        dim = space.spec.dim
        if matrix.ndim != 2 or (matrix.size and matrix.shape[1] != dim):
            raise InvalidVectorError(f"{what}: shape {np.shape(value)}, expected (n, {dim})")
        return matrix.reshape(-1, dim)

    def _finite_unit(self, space: _Space, matrix: np.ndarray, what: str) -> np.ndarray:
        """Refuse NaN/infinity; scale rows to unit length in place for normalised spaces.

        A normalised space's rows are checked by their sums of squares, one pass (the sum
        `np.linalg.norm` takes): they are finite and positive only when every value is finite
        and no row is zero or overflows. Only a matrix that fails it is checked value by value.
        """
        if space.spec.normalize and len(matrix):
            squares = np.add.reduce(matrix * matrix, axis=1)
            if len(squares) == 1:  # one query: its checks and its root on a Python float
                square = float(squares[0])
                if math.isfinite(square) and square > 0:
                    # the float64 root rounded to float32 is float32's own root (a root
                    # rounded to 53 bits, then 24, is rounded once: 53 >= 2 x 24 + 2), so the
                    # same row as below
                    matrix /= math.sqrt(square)
                    return matrix if matrix.flags.c_contiguous else np.ascontiguousarray(matrix)
            elif np.isfinite(squares).all() and squares.all():
                matrix /= np.sqrt(squares)[:, None]
                return matrix if matrix.flags.c_contiguous else np.ascontiguousarray(matrix)
        if not np.isfinite(matrix).all():
            raise InvalidVectorError(f"{what}: contains NaN or infinity")
        if space.spec.normalize and len(matrix):
            norms = np.linalg.norm(matrix, axis=1)
            if (norms == 0).any():
                raise InvalidVectorError(f"{what}: zero vector cannot be normalised")
            if np.isinf(norms).any():  # float32 squares overflow (components past ~1e19)
                norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
            matrix /= norms[:, None]
        return np.ascontiguousarray(matrix)


def _exact_price(price: Any) -> Decimal:
    """A price as a finite, non-negative Decimal (floats are refused: they are inexact)."""
    if type(price) is not Decimal:
        if isinstance(price, float):
            raise InvalidOfferError("offer.price must be a Decimal (floats are inexact)")
        try:
            price = Decimal(str(price)) if not isinstance(price, Decimal) else price
        except InvalidOperation:
            raise InvalidOfferError(f"offer.price {price!r} is not a number") from None
    if not price.is_finite() or price < 0:
        raise InvalidOfferError(f"offer.price must be finite and >= 0, got {price}")
    return price


def _currency_code(currency: Any) -> str | None:
    """An ISO 4217 code, upper-cased."""
    if currency is not None and not (
        isinstance(currency, str) and len(currency) == 3 and currency.isalpha()
    ):
        raise InvalidOfferError(f"offer.currency must be an ISO 4217 code, got {currency!r}")
    return None if currency is None else currency.upper()


def _utc_iso(seen: Any) -> str:
    """A sighting time as ISO text in UTC (a naive datetime is taken as UTC)."""
    if not isinstance(seen, datetime):
        raise InvalidOfferError(f"offer.seen_at must be a datetime, got {seen!r}")
    seen = seen.replace(tzinfo=UTC) if seen.tzinfo is None else seen.astimezone(UTC)
    return seen.isoformat()


def _check_objects(values: Any, name: str, required: str | None = None) -> None:
    """Refuse an offer list field that is not a list of JSON objects (each naming `required`)."""
    if not isinstance(values, list | tuple):
        raise InvalidOfferError(f"offer.{name} must be a list of objects, got {values!r}")
    for value in values:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise InvalidOfferError(f"offer.{name}: {value!r} is not an object with text keys")
        if required is not None and not isinstance(value.get(required), str):
            raise InvalidOfferError(f"offer.{name}: {value!r} has no {required!r}")
