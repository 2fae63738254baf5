"""The learned matcher: boosted trees or a logistic model over `signals.SIGNALS`, as JSON.

A model file holds the signal names, the trees (each node: signal, threshold, children, value)
or one coefficient per signal, the intercept, the decision threshold and its provenance
(training files with their sha256, pair counts, date, command, validation figures), so an
operator can read why a pair scored what it did and how to rebuild the file.
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
LOGISTIC, TREES = "logistic-regression", "gradient-boosted-trees"


class MatcherModelError(ValueError):
    """A model file that cannot be read or does not describe a matcher this code can run."""


# One node of a regression tree: (signal, threshold, left, right, value); a leaf has signal
# None and children -1. A pair goes left when its signal is <= threshold. `value` is the
# leaf's log-odds, or for an inner node the count-weighted mean of its leaves (so the path's
# steps attribute each leaf's value to the signals split on, as `contributions` reports).
Node = tuple[str | None, float, int, int, float]


@dataclass(frozen=True)
class MatcherModel:
    """A logistic model (`coefficients`) or boosted trees (`trees`) over `SIGNALS`.

    `probability` is the logistic of `log_odds`, which is `intercept` plus each signal's
    contribution: coefficient x value for the logistic model; for trees, the change in node
    value at every split on that signal along each tree's path (the root values are folded
    into `intercept` at load).
    """

    coefficients: dict[str, float]
    intercept: float
    threshold: float = 0.5
    provenance: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # where it was loaded from (not stored in the file)
    trees: tuple[tuple[Node, ...], ...] = ()

    def __post_init__(self) -> None:
        used = set(self.coefficients) | {n[0] for t in self.trees for n in t if n[0]}
        unknown = sorted(used - set(SIGNALS))
        if unknown:
            raise MatcherModelError(f"model uses signals this version lacks: {unknown}")
        if not 0 < self.threshold < 1:
            raise MatcherModelError(f"threshold must be in (0, 1), got {self.threshold!r}")
        values = [self.intercept, *self.coefficients.values()]
        values += [v for t in self.trees for n in t for v in (n[1], n[4])]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise MatcherModelError("weights, thresholds and values must be finite numbers")
        for tree in self.trees:
            if not tree or any(
                (n[0] is None) != (n[2] == -1) or not (n[2] == -1 or 0 < n[2] < len(tree))
                or not (n[3] == -1 or 0 < n[3] < len(tree)) for n in tree
            ):  # fmt: skip
                raise MatcherModelError("malformed tree: children must be later nodes")

    @property
    def kind(self) -> str:
        return TREES if self.trees else LOGISTIC

    def signals_used(self) -> frozenset[str]:
        """Signals that can change a verdict (a non-zero weight, or a split in some tree)."""
        split = {n[0] for tree in self.trees for n in tree if n[0]}
        return frozenset(split | {k for k, v in self.coefficients.items() if v})

    @property
    def base(self) -> float:
        """The log-odds before any signal: intercept plus every tree's root value."""
        return self.intercept + sum(tree[0][4] for tree in self.trees)

    def contributions(self, signals: dict[str, float]) -> dict[str, float]:
        """Each signal's share of the log-odds; signals the model does not use add 0."""
        out = {name: self.coefficients.get(name, 0.0) * signals.get(name, 0.0) for name in SIGNALS}
        for tree in self.trees:
            node = tree[0]
            while node[0] is not None:
                child = tree[node[2] if signals.get(node[0], 0.0) <= node[1] else node[3]]
                out[node[0]] += child[4] - node[4]
                node = child
        return out

    def log_odds(self, signals: dict[str, float]) -> float:
        return self.base + sum(self.contributions(signals).values())

    def probability(self, signals: dict[str, float]) -> float:
        z = self.log_odds(signals)
        return 1 / (1 + math.exp(-z)) if z > -700 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT, "kind": self.kind}
        if self.trees:
            names = sorted({n[0] for t in self.trees for n in t if n[0]}, key=SIGNALS.index)
            out["features"] = names
            out["intercept"] = round(self.intercept, 6)
            out["trees"] = [
                [[names.index(n[0]) if n[0] else -1, round(n[1], 6), n[2], n[3], round(n[4], 6)]
                 for n in tree]
                for tree in self.trees
            ]  # fmt: skip
        else:
            out["features"] = list(self.coefficients)
            out["coefficients"] = [round(v, 6) for v in self.coefficients.values()]
            out["intercept"] = round(self.intercept, 6)
        out["threshold"] = round(self.threshold, 4)
        out["provenance"] = self.provenance
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n")

    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> MatcherModel:
        where = source or "model"
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise MatcherModelError(f"{where}: not a {FORMAT} file")
        try:
            names = list(data["features"])
            intercept, threshold = float(data["intercept"]), float(data.get("threshold", 0.5))
            provenance = dict(data.get("provenance") or {})
            if data.get("kind", LOGISTIC) == TREES:
                trees = tuple(
                    tuple((names[int(f)] if int(f) >= 0 else None, float(t), int(left),
                           int(right), float(v)) for f, t, left, right, v in tree)
                    for tree in data["trees"]
                )  # fmt: skip
                return cls({}, intercept, threshold, provenance, source, trees)
            values = [float(v) for v in data["coefficients"]]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise MatcherModelError(f"{where}: malformed ({exc})") from exc
        if len(names) != len(values):
            raise MatcherModelError(f"{where}: {len(names)} features, {len(values)} weights")
        return cls(dict(zip(names, values, strict=True)), intercept, threshold, provenance, source)

    @classmethod
    def load(cls, path: str | Path) -> MatcherModel:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise MatcherModelError(f"cannot read matcher model {path}: {exc}") from exc
        return cls.from_json(text, str(path))

    @classmethod
    def from_json(cls, text: str, source: str) -> MatcherModel:
        """The model a JSON document holds; `source` names where it came from in errors."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MatcherModelError(f"{source}: not JSON ({exc})") from exc
        return cls.from_dict(data, source)


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> MatcherModel:
    return MatcherModel.load(path)


@lru_cache(maxsize=1)
def _shipped_model() -> MatcherModel:
    """The model shipped as package data, read through `importlib.resources`: scrapyd deploys
    the project as a zipped egg, where the file has no path on disk to stat or open."""
    resource = resources.files("cumpair.search").joinpath(DEFAULT_MODEL)
    try:
        text = resource.read_text()
    except OSError as exc:
        raise MatcherModelError(f"cannot read the shipped matcher model {resource}: {exc}") from exc
    return MatcherModel.from_json(text, str(resource))


def load_matcher(path: str | Path | None = None) -> MatcherModel:
    """The model at `path`, else at ``$CUMPAIR_MATCHER_MODEL``, else the shipped default.

    Cached per file and modification time, so matching many pairs reads the file once and a
    retrained file is picked up by the next call (the shipped model is read once).
    """
    chosen_name = path or os.environ.get(ENV_MODEL)
    if not chosen_name:
        return _shipped_model()
    chosen = Path(chosen_name)
    try:
        mtime = chosen.stat().st_mtime
    except OSError as exc:
        raise MatcherModelError(f"no matcher model at {chosen}: {exc}") from exc
    return _load_cached(str(chosen), mtime)
