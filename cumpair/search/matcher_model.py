"""The learned matcher: a logistic model over `signals.SIGNALS`, stored as readable JSON.

A model file holds feature names, one coefficient each, the intercept, the decision threshold
and its provenance (training files with their sha256, pair counts, date, command, validation
figures), so an operator can read why a pair scored what it did and how to rebuild the file.
The default ships as package data (`models/matcher.json`, made by ``cumpair matcher train``);
``CUMPAIR_MATCHER_MODEL`` or a ``--matcher`` option points matching at an operator's own.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from cumpair.search.signals import SIGNALS

FORMAT = "cumpair-matcher/1"
ENV_MODEL = "CUMPAIR_MATCHER_MODEL"
DEFAULT_MODEL = "models/matcher.json"  # inside the cumpair.search package


class MatcherModelError(ValueError):
    """A model file that cannot be read or does not describe a matcher this code can run."""


@dataclass(frozen=True)
class MatcherModel:
    """Weights of the signals; `probability` is the logistic of their weighted sum."""

    coefficients: dict[str, float]
    intercept: float
    threshold: float = 0.5
    provenance: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # where it was loaded from (not stored in the file)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.coefficients) - set(SIGNALS))
        if unknown:
            raise MatcherModelError(f"model uses signals this version lacks: {unknown}")
        if not 0 < self.threshold < 1:
            raise MatcherModelError(f"threshold must be in (0, 1), got {self.threshold!r}")
        values = [self.intercept, *self.coefficients.values()]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise MatcherModelError("coefficients and intercept must be finite numbers")

    def contributions(self, signals: dict[str, float]) -> dict[str, float]:
        """Each signal's share of the log-odds (coefficient x value); unlisted signals add 0."""
        return {name: self.coefficients.get(name, 0.0) * signals.get(name, 0.0) for name in SIGNALS}

    def log_odds(self, signals: dict[str, float]) -> float:
        return self.intercept + sum(self.contributions(signals).values())

    def probability(self, signals: dict[str, float]) -> float:
        z = self.log_odds(signals)
        return 1 / (1 + math.exp(-z)) if z > -700 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": "logistic-regression",
            "features": list(self.coefficients),
            "coefficients": [round(v, 6) for v in self.coefficients.values()],
            "intercept": round(self.intercept, 6),
            "threshold": round(self.threshold, 4),
            "provenance": self.provenance,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> MatcherModel:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise MatcherModelError(f"{source or 'model'}: not a {FORMAT} file")
        try:
            names, values = list(data["features"]), [float(v) for v in data["coefficients"]]
            intercept, threshold = float(data["intercept"]), float(data.get("threshold", 0.5))
        except (KeyError, TypeError, ValueError) as exc:
            raise MatcherModelError(f"{source or 'model'}: malformed ({exc})") from exc
        if len(names) != len(values):
            raise MatcherModelError(
                f"{source or 'model'}: {len(names)} features, {len(values)} weights"
            )
        return cls(dict(zip(names, values, strict=True)), intercept, threshold,
                   dict(data.get("provenance") or {}), source)  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> MatcherModel:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise MatcherModelError(f"cannot read matcher model {path}: {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MatcherModelError(f"{path}: not JSON ({exc})") from exc
        return cls.from_dict(data, str(path))


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> MatcherModel:
    return MatcherModel.load(path)


@lru_cache(maxsize=1)
def default_model_path() -> Path:
    """The shipped model (package data)."""
    return Path(str(resources.files("cumpair.search").joinpath(DEFAULT_MODEL)))


def load_matcher(path: str | Path | None = None) -> MatcherModel:
    """The model at `path`, else at ``$CUMPAIR_MATCHER_MODEL``, else the shipped default.

    Cached per file and modification time, so matching many pairs reads the file once and a
    retrained file is picked up by the next call.
    """
    chosen = Path(path or os.environ.get(ENV_MODEL) or default_model_path())
    try:
        mtime = chosen.stat().st_mtime
    except OSError as exc:
        raise MatcherModelError(f"no matcher model at {chosen}: {exc}") from exc
    return _load_cached(str(chosen), mtime)
