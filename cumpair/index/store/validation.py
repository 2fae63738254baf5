"""Validation of what enters the store: offer fields (exact prices, ISO currencies, JSON lists)
and vectors (shape, dimension, finite, normalised). Nothing is written here.
"""

from __future__ import annotations

from collections.abc import Mapping
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


class Validation(StoreBase):
    """Validation of what enters the store (a part of `ProductStore`)."""

    def _check_offer(self, offer: OfferRecord) -> tuple[metadata.OfferRow, str]:
        """The offer's column values (exact price, upper-case currency) and UTC sighting time."""
        if not isinstance(offer, OfferRecord):
            raise InvalidOfferError(f"expected OfferRecord, got {type(offer).__name__}")
        for name in ("shop", "url"):
            value = getattr(offer, name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidOfferError(f"offer.{name} must be a non-empty string, got {value!r}")
        price = offer.price
        if price is not None:
            if isinstance(price, float):
                raise InvalidOfferError("offer.price must be a Decimal (floats are inexact)")
            try:
                price = Decimal(str(price)) if not isinstance(price, Decimal) else price
            except InvalidOperation:
                raise InvalidOfferError(f"offer.price {offer.price!r} is not a number") from None
            if not price.is_finite() or price < 0:
                raise InvalidOfferError(f"offer.price must be finite and >= 0, got {price}")
        currency = offer.currency
        if currency is not None and not (
            isinstance(currency, str) and len(currency) == 3 and currency.isalpha()
        ):
            raise InvalidOfferError(f"offer.currency must be an ISO 4217 code, got {currency!r}")
        seen = offer.seen_at or utcnow()
        if not isinstance(seen, datetime):
            raise InvalidOfferError(f"offer.seen_at must be a datetime, got {seen!r}")
        seen = seen.replace(tzinfo=UTC) if seen.tzinfo is None else seen.astimezone(UTC)
        try:
            condition = condition_name(offer.condition)
        except ValueError as exc:
            raise InvalidOfferError(f"offer.condition: {exc}") from None
        _check_objects(offer.shipping, "shipping")
        _check_objects(offer.spec_conflicts, "spec_conflicts", required="field")
        try:
            row = metadata.offer_row(
                offer, price, None if currency is None else currency.upper(), condition
            )
        except (TypeError, ValueError) as exc:
            raise InvalidOfferError(f"offer fields cannot be stored: {exc}") from exc
        return row, seen.isoformat()

    def _check_batch_vectors(
        self, batch: list[Mapping[str, np.ndarray]]
    ) -> list[dict[str, np.ndarray]]:
        """`_as_matrix` for every item's vectors, with the NumPy work done once per space."""
        checked: list[dict[str, np.ndarray]] = []
        per_space: dict[str, list[tuple[int, np.ndarray]]] = {}
        for n, vectors in enumerate(batch):
            if not isinstance(vectors, Mapping):
                raise InvalidVectorError("vectors must map a space name to an array")
            shaped = {}
            for name, value in vectors.items():
                matrix = self._shaped(self._space(name), value, what=f"vectors[{name!r}]")
                if len(matrix) > MAX_VECTORS_PER_OFFER:
                    raise InvalidVectorError(
                        f"vectors[{name!r}]: {len(matrix)} vectors, at most {MAX_VECTORS_PER_OFFER}"
                    )
                shaped[name] = matrix
                per_space.setdefault(name, []).append((n, matrix))
            checked.append(shaped)
        for name, parts in per_space.items():
            space = self._spaces[name]
            stacked = np.concatenate([matrix for _, matrix in parts])  # a copy we own
            try:
                self._finite_unit(space, stacked, "")
            except InvalidVectorError:  # find the culprit for the message
                for _, matrix in parts:
                    self._finite_unit(space, matrix.copy(), f"vectors[{name!r}]")
                raise
            start = 0
            for n, matrix in parts:
                checked[n][name] = stacked[start : start + len(matrix)]
                start += len(matrix)
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
        """Refuse NaN/infinity; scale rows to unit length in place for normalised spaces."""
        if not np.isfinite(matrix).all():
            raise InvalidVectorError(f"{what}: contains NaN or infinity")
        if space.spec.normalize and len(matrix):
            norms = np.linalg.norm(matrix, axis=1)
            if (norms == 0).any():
                raise InvalidVectorError(f"{what}: zero vector cannot be normalised")
            matrix /= norms[:, None]
        return np.ascontiguousarray(matrix)


def _check_objects(values: Any, name: str, required: str | None = None) -> None:
    """Refuse an offer list field that is not a list of JSON objects (each naming `required`)."""
    if not isinstance(values, list | tuple):
        raise InvalidOfferError(f"offer.{name} must be a list of objects, got {values!r}")
    for value in values:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise InvalidOfferError(f"offer.{name}: {value!r} is not an object with text keys")
        if required is not None and not isinstance(value.get(required), str):
            raise InvalidOfferError(f"offer.{name}: {value!r} has no {required!r}")
