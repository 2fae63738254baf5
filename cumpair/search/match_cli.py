"""The `cumpair match` and `cumpair matcher train` sub-commands.

``cumpair match A.json B.json [--explain]`` says whether two offers (JSON objects with the
store's field names) are one product, with the probability and, with ``--explain``, every
signal's value, weight and contribution. ``cumpair matcher train PAIRS... --out FILE`` fits a
matcher on labelled pairs (see `matcher_train`); point matching at it with ``--matcher FILE``
or ``CUMPAIR_MATCHER_MODEL``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cumpair.search.features import OfferError
from cumpair.search.matcher_model import MatcherModelError
from cumpair.search.matching import MatchConfig, PairEvidence, explain_dict, match_offers


def format_match(evidence: PairEvidence, config: MatchConfig, explain: bool) -> str:
    verdict = "same product" if evidence.same else "different products"
    lines = [f"{verdict}: probability {evidence.score:.3f} ({evidence.rule})"]
    if not explain:
        return lines[0] + "\n"
    if not evidence.signals:
        lines += [f"  {reason}" for reason in evidence.reasons]
        return "\n".join(lines) + "\n"
    model = config.model
    lines.append(f"threshold {config.cut:g}, {model.kind} model {model.source}")
    weighted = bool(model.coefficients)  # a logistic model has one weight per signal
    lines.append(f"  {'signal':<28} {'value':>7}{' weight ' if weighted else ''} {'log-odds':>9}")
    shown = [k for k, v in evidence.signals.items() if v or evidence.contributions.get(k)]
    ranked = sorted(shown, key=lambda k: -abs(evidence.contributions.get(k, 0.0)))
    for name in ranked:
        weight = f" {model.coefficients.get(name, 0.0):7.3f}" if weighted else ""
        part = evidence.contributions.get(name, 0.0)
        lines.append(f"  {name:<28} {evidence.signals[name]:7.3f}{weight} {part:+9.3f}")
    pad = " " * 8 if weighted else ""
    lines.append(f"  {'base (no signal)':<28} {'':>7}{pad} {model.base:+9.3f}")
    lines.append(f"  ({len(evidence.signals) - len(shown)} signals are 0 and add nothing)")
    return "\n".join(lines) + "\n"


def _read_offer(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise OfferError(f"{path}: {exc}") from exc


def run_match(args: argparse.Namespace) -> int:
    config = MatchConfig(model_path=args.matcher, threshold=args.threshold)
    try:
        evidence = match_offers(_read_offer(args.left), _read_offer(args.right), config)
    except (OfferError, MatcherModelError) as exc:
        print(f"cumpair match: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(explain_dict(evidence, config), indent=2))
    else:
        print(format_match(evidence, config, args.explain), end="")
    return 0


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `match` and `matcher` on the `cumpair` command."""
    match = subparsers.add_parser("match", help="are two offers (JSON files) the same product?")
    match.add_argument("left", metavar="A.json", help="one offer as JSON (the feed's field names)")
    match.add_argument("right", metavar="B.json", help="the other offer, same form")
    match.add_argument("--explain", action="store_true", help="show every signal and its weight")
    match.add_argument("--json", action="store_true", help="print the verdict as JSON")
    match.add_argument("--matcher", metavar="FILE", help="model file (default: shipped)")
    match.add_argument("--threshold", type=_probability, help="override the model's threshold")
    match.set_defaults(func=run_match)

    matcher = subparsers.add_parser("matcher", help="train the learned matcher")
    actions = matcher.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="fit a matcher on labelled pairs")
    train.add_argument("pairs", nargs="+", metavar="PAIRS", help="WDC .txt or JSON-lines pairs")
    train.add_argument("--out", default="matcher.json", help="model file to write (matcher.json)")
    train.add_argument(
        "--learner", choices=("logistic", "trees"), default="logistic", help="model kind"
    )
    train.add_argument(
        "--c", type=float, default=1.0, help="logistic: inverse L2 regularisation (1.0)"
    )
    train.add_argument(
        "--text-encoder", choices=("offline", "clip"), help="also learn a text-embedding cosine"
    )
    train.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from cumpair.search.matcher_train import main_train

    return main_train(args)
