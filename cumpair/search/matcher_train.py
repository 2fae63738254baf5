"""Train the learned matcher from labelled offer pairs (``cumpair matcher train``).

Reads pairs in two formats: the WDC product-matching format (one pair a line,
``COL title VAL <left>\\tCOL title VAL <right>\\t<label>``, more ``COL name VAL value`` fields
allowed) and JSON lines ``{"left": offer, "right": offer, "label": 0 or 1}`` where an offer has
the store's field names (title, brand, model, gtin, sku, price, currency, description, shop).
Fits a logistic regression (or small gradient-boosted trees, ``--learner trees``; both
scikit-learn) on `signals.pair_signals`, picks the threshold with the best F1 over
cross-validated predictions, and writes a `MatcherModel` with its provenance.

Why logistic by default (WDC valid pair F1, computers / cameras / watches / shoes, each pair
through `pair_signals` with IDF learned per file; the shipped signals less short_codes_unexplained
and purpose_one_sided): trees trained on all four categories reach 0.869 / 0.833 / 0.858 / 0.825
vs 0.855 / 0.799 / 0.835 / 0.770, but trained without the category they are tested on (what
other shops' products are to a shipped model) 0.835 / 0.801 / 0.821 / 0.694 vs 0.852 / 0.779 /
0.829 / 0.722: the linear model generalises better (mean 0.795 vs 0.788), and its weights read
at a glance. Smaller trees (4 leaves) and the mean of both models' log-odds did no better
unseen (0.791, 0.801 vs 0.801 for the logistic model with every signal).

Titles are compared without the boilerplate grouping strips (`learn_boilerplate`), so the
model learns on the text it will judge: mean WDC valid F1 0.810 -> 0.813, unseen categories
0.792 -> 0.799 (cameras 0.775 -> 0.790, shoes 0.732 -> 0.744). The MiniLM cosine of the text
the store embeds (``--text-encoder offline``) adds nothing measurable on top: cross-validated
F1 0.801 either way, valid 0.814 vs 0.813, unseen 0.800 vs 0.799; the shipped model leaves it
out, so rebuilding it needs no encoder.

What tells two titles apart (`signals._differences`: an audience each names, numbers each has
alone, a bare body beside a bundle, the rarest word each has alone) moved the matcher's WDC
valid F1 from 0.854 / 0.806 / 0.828 / 0.773 to 0.866 / 0.825 / 0.833 / 0.799 and, trained
without the category tested, from 0.853 / 0.794 / 0.820 / 0.749 to 0.857 / 0.811 / 0.816 /
0.764 (mean 0.804 -> 0.812); the audience words alone gave most of it on shoes. (Review R14's
mends of the audience and bundle words then moved valid F1 to 0.866 / 0.824 / 0.836 / 0.797.)

Mended readings and a signal for titles in two languages (#14, session 12), each measured
trained without the category tested on, with the signal matrices of each category's train.txt
(its own brands, boilerplate and IDF; mean over the four categories): numbers compared whole
("Pegasus 3" is not in "Pegasus 33", "Metcon 2" not in "852928-002") and audiences read from
German compounds (Damenuhr) and not from names (Casio's "Baby-G") 0.815 -> 0.816; dropping the
two-letter sizes GS / PS / TD (Grand Seiko, a PS/2 port) from the audience words 0.8157 ->
0.8161 (kept out: they read one shop's shoes, and mean something else elsewhere); the share of
each title's store-rare words the other writes (`rare_contained_min` / `_max`) 0.816 -> 0.819,
cameras 0.819 -> 0.830, watches 0.824 -> 0.827 (shoes 0.763 -> 0.762). A brand agreeing weighs
less than no brand known (brand_agree < 0, as brand_conflict): leaving brand_agree out, so that
a missing brand scores as an agreeing one, lowered the mean (0.821 -> 0.818, measured before
rarity left the compared pair out of its counts), so the learned weights stay. Trees on these
signals fit better and generalise worse again: 0.875 / 0.840 / 0.870 / 0.833 trained on all four,
but 0.810 trained without the category tested, against the logistic model's 0.821.

No learned text similarity ships (#14, session 14; trained without the category tested, mean
0.8217 with these signals, 0.8219 with the MiniLM cosine). Two heads over the frozen MiniLM
vectors of both titles, each an extra signal trained on the training categories' pairs only:
logistic on |u-v| and u*v 0.8229 (C=0.05), and a learned 384x128 projection compared by
cosine 0.8225, though that projection alone raises the cosine's ranking of unseen categories'
pairs (ROC AUC computers 0.741 -> 0.795, cameras 0.816 -> 0.867, watches 0.682 -> 0.698, shoes
0.710 -> 0.751). The matcher's own signals already hold what they add. A head's outputs on its
own training pairs must come from heads trained without their category: predicted across folds
of pooled pairs (categories and offers shared) the matcher trusts them and falls to 0.787 with
the projection (the logistic head, computers: 0.8545 against 0.8609 without it).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cumpair.progress import progress
from cumpair.search.boilerplate import TitleBoilerplate, without_boilerplate
from cumpair.search.features import BrandLexicon, features_from_dict, title_tokens
from cumpair.search.matcher_model import MatcherModel, Node
from cumpair.search.signals import SIGNALS, TokenWeights, pair_signals

_WDC_FIELD = re.compile(r"COL\s+(\w+)\s+VAL\s+")
ENCODE_BATCH = 32  # texts per text-encoder call
WITHHELD = 0.25  # share of training pairs judged without a corpus (no TF-IDF), as alone


class PairsError(ValueError):
    """A pairs file that cannot be read; says which file and line."""


@dataclass(frozen=True)
class LabelledPair:
    """Two offers (field name -> value) and whether they are the same product."""

    left: dict[str, Any]
    right: dict[str, Any]
    label: int


def _wdc_offer(text: str) -> dict[str, Any]:
    parts = _WDC_FIELD.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise ValueError("expected 'COL name VAL value'")
    return {name: value.strip() for name, value in zip(parts[1::2], parts[2::2], strict=True)}


def _label(value: Any) -> int:
    if str(value).strip() not in ("0", "1"):
        raise ValueError(f"label must be 0 or 1, got {value!r}")
    return int(str(value).strip())


def read_pairs(path: str | Path) -> Iterator[LabelledPair]:
    """The pairs of one file (WDC or JSON lines, told apart by each line's first character)."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise PairsError(f"cannot read {path}: {exc}") from exc
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                if line.lstrip().startswith("{"):
                    row = json.loads(line)
                    pair = LabelledPair(row["left"], row["right"], _label(row["label"]))
                else:
                    left, right, label = line.rstrip("\n").split("\t")
                    pair = LabelledPair(_wdc_offer(left), _wdc_offer(right), _label(label))
                for side in (pair.left, pair.right):
                    if not isinstance(side, dict):
                        raise ValueError("left and right must be objects")
                    if not (str(side.get("title") or "").strip() or side.get("gtin")):
                        raise ValueError("an offer needs a title or a gtin")
                yield pair
            except (ValueError, KeyError, TypeError) as exc:
                raise PairsError(f"{path}:{number}: {exc}") from exc


def learn_brands(pairs: Sequence[LabelledPair]) -> BrandLexicon:
    """The brands of these pairs' offers, learned as a store learns its own (`BrandLexicon`)."""
    offers = [o for p in pairs for o in (p.left, p.right)]
    titles = {str(o.get("title") or "") for o in offers}
    return BrandLexicon.learn(titles, (o.get("brand") for o in offers))


def learn_boilerplate(pairs: Sequence[LabelledPair]) -> TitleBoilerplate:
    """The title boilerplate of these pairs' distinct offers (by shop where they name one), as
    grouping learns a store's: the model is trained on the titles grouping compares."""
    offers = {(str(o.get("title") or ""), str(o.get("shop") or "")) for p in pairs
              for o in (p.left, p.right)}  # fmt: skip
    titles, shops = zip(*sorted(offers), strict=True) if offers else ((), ())
    return TitleBoilerplate.learn(titles, shops)


def learn_weights(
    pairs: Sequence[LabelledPair], boilerplate: TitleBoilerplate | None = None
) -> TokenWeights:
    """Title-token IDF over these pairs' distinct offers, as a store learns its own (on titles
    without `boilerplate`). Two offers whose titles only differ in boilerplate stay two
    documents, as in a store: `TokenWeights.rare` leaves both compared offers out of the
    counts, which would otherwise take two away from a word only one document counted."""
    titles = sorted({str(o.get("title") or "") for p in pairs for o in (p.left, p.right)})
    if boilerplate is not None:
        titles = [boilerplate.remove(t) for t in titles]
    return TokenWeights.learn(title_tokens(t) for t in titles)


def signal_matrix(
    pairs: Sequence[LabelledPair],
    brands: BrandLexicon | None,
    text_sims: Sequence[float | None] | None = None,
    weights: TokenWeights | None = None,
    withheld: float = WITHHELD,
    boilerplate: TitleBoilerplate | None = None,
) -> np.ndarray:
    """(pairs, len(SIGNALS)) signals in `SIGNALS` order, titles compared without
    `boilerplate`. TF-IDF (`weights`) is withheld from a random `withheld` share of pairs so
    the model also decides two offers judged alone."""
    keep = np.random.default_rng(1).random(len(pairs)) >= withheld
    rows = []
    for n, pair in enumerate(pairs):
        a = features_from_dict(pair.left, 2 * n, brands)
        b = features_from_dict(pair.right, 2 * n + 1, brands)
        if boilerplate is not None:
            a, b = without_boilerplate([a, b], boilerplate)
        sim = text_sims[n] if text_sims is not None else None
        signals = pair_signals(a, b, text_sim=sim, weights=weights if keep[n] else None)
        rows.append([signals[name] for name in SIGNALS])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(SIGNALS))


def text_similarities(
    pairs: Sequence[LabelledPair], encoder: Any, withheld: float = 0.3
) -> list[float | None]:
    """Cosine of each pair's text vectors under a text encoder (`cumpair.embed` `TextEncoder`)
    of the text the store embeds (`product_text`: the whole title, brand and model), withheld
    (None) from a random `withheld` share of pairs so the model also learns to decide when an
    offer has no text vector (``cumpair match`` of two files, an offer without text)."""
    from cumpair.embed.text import product_text

    # in batches of like length (one call over every text would pad all to the longest), ties
    # by text: the same batches whatever the set's order, so a rebuild encodes as the original
    texts = sorted(
        {product_text(o) for p in pairs for o in (p.left, p.right)}, key=lambda t: (len(t), t)
    )
    vectors: dict[str, np.ndarray] = {}
    for start in progress(range(0, len(texts), ENCODE_BATCH), desc="encode", unit="batch"):
        batch = texts[start : start + ENCODE_BATCH]
        vectors.update(zip(batch, encoder.encode_texts(batch), strict=True))
    keep = np.random.default_rng(0).random(len(pairs)) >= withheld
    return [
        float(vectors[product_text(p.left)] @ vectors[product_text(p.right)]) if kept else None
        for p, kept in zip(pairs, keep, strict=True)
    ]


def best_threshold(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, float]]:
    """The probability cut with the highest F1, and precision/recall/F1 there."""
    best = (0.5, {"precision": 0.0, "recall": 0.0, "f1": 0.0})
    for cut in np.arange(0.05, 0.951, 0.01):
        scores = pair_scores(probabilities >= cut, labels)
        if scores["f1"] > best[1]["f1"]:
            best = (round(float(cut), 2), scores)
    return best


def pair_scores(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of yes/no verdicts against 0/1 labels."""
    predicted, labels = np.asarray(predicted, bool), np.asarray(labels, bool)
    tp = int(np.sum(predicted & labels))
    precision = tp / max(int(predicted.sum()), 1)
    recall = tp / max(int(labels.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# The boosted trees: small enough to read and ship (~100 trees of <= 15 leaves), fixed seed.
TREE_PARAMS = {"max_iter": 100, "max_leaf_nodes": 15, "max_depth": 4, "learning_rate": 0.1,
               "early_stopping": False, "random_state": 0}  # fmt: skip
LEARNERS = ("logistic", "trees")


def _exported(model: Any) -> tuple[float, tuple[tuple[Node, ...], ...]]:
    """(baseline log-odds, trees) of a fitted HistGradientBoostingClassifier, inner nodes
    valued as the count-weighted mean of their children (children follow their parent)."""
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        values = nodes["value"].astype(float)
        for i in range(len(nodes) - 1, -1, -1):
            if not nodes["is_leaf"][i]:
                left, right = int(nodes["left"][i]), int(nodes["right"][i])
                weights = float(nodes["count"][left]), float(nodes["count"][right])
                values[i] = (values[left] * weights[0] + values[right] * weights[1]) / sum(weights)
        trees.append(tuple(
            (None, 0.0, -1, -1, float(values[i])) if nodes["is_leaf"][i] else
            (SIGNALS[int(nodes["feature_idx"][i])], float(nodes["num_threshold"][i]),
             int(nodes["left"][i]), int(nodes["right"][i]), float(values[i]))
            for i in range(len(nodes))
        ))  # fmt: skip
    return float(np.ravel(model._baseline_prediction)[0]), tuple(trees)


def _learner(name: str, regularisation: float) -> tuple[Any, str]:
    from sklearn import __version__ as version

    if name == "trees":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(**TREE_PARAMS), (
            f"scikit-learn {version} HistGradientBoostingClassifier({TREE_PARAMS})"
        )
    if name == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=regularisation, max_iter=2000), (
            f"scikit-learn {version} LogisticRegression(C={regularisation})"
        )
    raise ValueError(f"learner must be one of {LEARNERS}, got {name!r}")


def train(
    paths: Iterable[str | Path],
    *,
    learner: str = "logistic",
    text_encoder: Any = None,
    regularisation: float = 1.0,
    folds: int = 5,
    command: str = "",
) -> MatcherModel:
    """Fit a `MatcherModel` on every pair of `paths` (see the module docstring)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    paths = [Path(p) for p in paths]
    pairs: list[LabelledPair] = []
    data = []
    for path in paths:
        own = list(read_pairs(path))
        data.append({"file": str(path), "sha256": _sha256(path), "pairs": len(own),
                     "same_product": sum(p.label for p in own)})  # fmt: skip
        pairs.extend(own)
    labels = np.asarray([p.label for p in pairs])
    if len(set(labels.tolist())) < 2 or min(np.bincount(labels)) < folds:
        raise PairsError(f"need at least {folds} pairs of each label, got {np.bincount(labels)}")
    sims = text_similarities(pairs, text_encoder) if text_encoder is not None else None
    boilerplate = learn_boilerplate(pairs)
    matrix = signal_matrix(
        pairs, learn_brands(pairs), sims, learn_weights(pairs, boilerplate), boilerplate=boilerplate
    )
    model, description = _learner(learner, regularisation)
    splits = StratifiedKFold(folds, shuffle=True, random_state=0)
    held_out = cross_val_predict(model, matrix, labels, cv=splits, method="predict_proba")[:, 1]
    threshold, scores = best_threshold(held_out, labels)
    model.fit(matrix, labels)
    unseen = [name for i, name in enumerate(SIGNALS) if np.ptp(matrix[:, i]) == 0]
    provenance = {
        "data": data,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command or " ".join(["cumpair", "matcher", "train", *map(str, paths)]),
        "learner": description,
        "text_encoder": getattr(text_encoder, "name", None),
        "corpus": f"brands, title boilerplate ({len(boilerplate.endings)} endings) and title IDF"
        f" learned from the training offers; IDF withheld from {WITHHELD:.0%} of pairs",
        "cross_validated": {"folds": folds, "threshold": threshold, **scores},
        "signals_absent_from_data": unseen,
    }
    if learner == "logistic":
        weights = {name: float(c) for name, c in zip(SIGNALS, model.coef_[0], strict=True)}
        return MatcherModel(weights, float(model.intercept_[0]), threshold, provenance)
    baseline, trees = _exported(model)
    matcher = MatcherModel({}, baseline, threshold, provenance, trees=trees)
    raw = model.decision_function(matrix[:1000])
    mine = [matcher.log_odds(dict(zip(SIGNALS, row, strict=True))) for row in matrix[:1000]]
    if not np.allclose(raw, mine, atol=1e-6):  # the export must decide as the fitted model
        raise RuntimeError("exported trees disagree with scikit-learn's own predictions")
    return matcher


def main_train(args: Any) -> int:
    """``cumpair matcher train PAIRS... [--out FILE] [--text-encoder offline]``."""
    text_encoder = None
    if args.text_encoder:
        from cumpair.embed import load_encoders

        text_encoder = load_encoders(args.text_encoder).text
    options = [f"--learner {args.learner}"] * (args.learner != "logistic")
    options += [f"--c {args.c}"] * (args.c != 1.0)
    options += [f"--text-encoder {args.text_encoder}"] * bool(args.text_encoder)
    command = " ".join(["cumpair matcher train", *map(str, args.pairs), *options])
    try:
        model = train(args.pairs, learner=args.learner, text_encoder=text_encoder,
                      regularisation=args.c, command=command)  # fmt: skip
    except PairsError as exc:
        print(f"cumpair matcher train: {exc}", file=sys.stderr)
        return 2
    model.save(args.out)
    cv = model.provenance["cross_validated"]
    print(
        f"wrote {args.out}: {sum(d['pairs'] for d in model.provenance['data'])} pairs, "
        f"cross-validated F1 {cv['f1']:.3f} (P {cv['precision']:.3f}, R {cv['recall']:.3f}) "
        f"at threshold {cv['threshold']}"
    )
    return 0
