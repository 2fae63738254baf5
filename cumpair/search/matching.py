"""Decide whether two offers (usually from different shops) sell the same product, and why.

Rules, in order, each recorded in `PairEvidence.rule` so `--explain` can show it:

1. ``gtin``: both carry a valid GTIN -> same product iff equal (a shop's typo fails the check
   digit and counts as no GTIN, see `cumpair.identifiers`); ``gtin-conflict`` otherwise.
2. ``spec-conflict``: a capacity/rating that must agree (storage, voltage, power, volume,
   weight) disagrees -> different products.
3. ``learned`` / ``different``: otherwise the learned matcher (`matcher_model`) weighs every
   signal of `signals.pair_signals` (model-code agreement, conflict and variant families, brand
   agreement, title similarity, numbers, text and image cosines, price ratio, descriptions) and
   the pair is one product when its probability reaches the model's threshold. The weights come
   from labelled pairs (``cumpair matcher train``), not from hand-set rules; the evidence lists
   each signal's value and its contribution to the log-odds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from cumpair.search.features import (
    NUMERIC_SPECS,
    ROUNDING_SLACK,
    OfferFeatures,
    features_from_dict,
)
from cumpair.search.matcher_model import MatcherModel, load_matcher
from cumpair.search.signals import TokenWeights, pair_signals

Rule = Literal["gtin", "gtin-conflict", "spec-conflict", "learned", "different"]


@dataclass(frozen=True)
class MatchConfig:
    """The learned matcher to use and, optionally, a threshold overriding the model's own.

    `model_path` None means ``$CUMPAIR_MATCHER_MODEL`` or the shipped default (`load_matcher`).
    """

    model_path: str | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold!r}")

    @cached_property
    def model(self) -> MatcherModel:
        """The model, loaded once per config (a config lives for one grouping or command)."""
        return load_matcher(self.model_path)

    @property
    def cut(self) -> float:
        """The probability at or above which a pair is one product."""
        return self.model.threshold if self.threshold is None else self.threshold

    @classmethod
    def from_settings(cls, settings: Any) -> MatchConfig:
        """From Scrapy-style settings: ``CUMPAIR_MATCHER_MODEL``, ``CUMPAIR_MATCH_THRESHOLD``."""
        threshold = settings.get("CUMPAIR_MATCH_THRESHOLD")
        return cls(
            model_path=settings.get("CUMPAIR_MATCHER_MODEL") or None,
            threshold=float(threshold) if threshold not in (None, "") else None,
        )


@dataclass(frozen=True)
class PairEvidence:
    """The verdict on one pair of offers with everything that led to it (JSON-ready).

    `score` is the probability that both are one product; `signals` the learned matcher's inputs
    and `contributions` what each added to the log-odds (empty when a GTIN or spec decided).
    """

    a: int
    b: int
    same: bool
    rule: Rule
    score: float
    signals: dict[str, float] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    contributions: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "offers": [self.a, self.b],
            "same_product": self.same,
            "rule": self.rule,
            "score": round(self.score, 4),
            "signals": {k: round(v, 4) for k, v in self.signals.items()},
            "contributions": {k: round(v, 4) for k, v in self.contributions.items()},
            "reasons": list(self.reasons),
        }


def spec_conflicts(a: OfferFeatures, b: OfferFeatures) -> list[str]:
    """Specs both offers state that disagree beyond their rounding tolerance."""
    out = []
    for name, tolerance in NUMERIC_SPECS.items():
        x, y = a.specs.get(name), b.specs.get(name)
        if x is None or y is None:
            continue
        if abs(x - y) > max(tolerance * max(x, y), ROUNDING_SLACK.get(name, 0.0)):
            out.append(f"{name} {x:g} vs {y:g}")
    return out


def compare(
    a: OfferFeatures,
    b: OfferFeatures,
    *,
    text_sim: float | None = None,
    image_sim: float | None = None,
    config: MatchConfig | None = None,
    weights: TokenWeights | None = None,
) -> PairEvidence:
    """Apply the rules of this module's docstring to one pair of offers (`weights`: the
    store's title-token IDF, when the pair is judged among other offers)."""
    config = config or MatchConfig()
    if a.gtin and b.gtin:
        if a.gtin == b.gtin:
            return PairEvidence(a.key, b.key, True, "gtin", 1.0, reasons=(f"same GTIN {a.gtin}",))
        return PairEvidence(
            a.key, b.key, False, "gtin-conflict", 0.0, reasons=(f"GTIN {a.gtin} vs {b.gtin}",)
        )
    conflicts = spec_conflicts(a, b)
    if conflicts:
        return PairEvidence(a.key, b.key, False, "spec-conflict", 0.0, reasons=tuple(conflicts))
    model = config.model
    signals = pair_signals(a, b, text_sim=text_sim, image_sim=image_sim, weights=weights)
    contributions = {k: v for k, v in model.contributions(signals).items() if v}
    probability = model.probability(signals)
    same = probability >= config.cut
    strongest = sorted(contributions.items(), key=lambda kv: -abs(kv[1]))[:3]
    reasons = (
        f"probability {probability:.3f} {'>=' if same else '<'} {config.cut:g}",
        *(f"{name} {signals[name]:.3f} ({value:+.2f})" for name, value in strongest),
    )
    rule: Rule = "learned" if same else "different"
    return PairEvidence(a.key, b.key, same, rule, probability, signals, reasons, contributions)


def match_offers(left: Any, right: Any, config: MatchConfig | None = None) -> PairEvidence:
    """The verdict on two offers given as mappings (raises `OfferError`, `MatcherModelError`)."""
    return compare(features_from_dict(left, 1), features_from_dict(right, 2), config=config)


def explain_dict(evidence: PairEvidence, config: MatchConfig) -> dict[str, Any]:
    """`evidence` as JSON plus the model's kind, base log-odds, weights (logistic) and source."""
    out = evidence.to_dict()
    if evidence.signals:
        model = config.model
        out["threshold"] = config.cut
        out["base"] = round(model.base, 4)
        if model.coefficients:
            out["weights"] = {k: round(model.coefficients.get(k, 0.0), 4) for k in evidence.signals}
        out["model"] = {"kind": model.kind, "source": model.source,
                        "trained_at": model.provenance.get("trained_at")}  # fmt: skip
    return out
