"""The named signals a learned matcher weighs for one pair of offers (all in [0, 1]).

One function, `pair_signals`, turns two `OfferFeatures` (and the cosines their vectors give)
into a fixed set of named numbers; training (`matcher_train`) and deciding (`matching`) both
call it, so a model file's feature names always mean what this module computes. A signal one
offer lacks is 0 with its ``*_known`` indicator 0, never a guess. TF-IDF needs a corpus
(`TokenWeights`, learned from the offers being grouped); two offers alone go without it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from cumpair.search.features import (
    DECIMAL,
    OfferFeatures,
    audiences,
    bare_numbers,
    bundle_words,
    code_relation,
    first_code,
    names_a_purpose,
    quantities,
    quantity_relation,
    read_numbers,
    same_family,
    short_codes,
    title_head,
    unexplained_numbers,
    unexplained_short_codes,
)

# In the order a model file lists them; adding one means retraining the shipped model.
SIGNALS: tuple[str, ...] = (
    "code_exact",
    "code_family",
    "code_contained",
    "code_conflict",
    "code_one_sided",
    "code_unexplained",
    "code_siblings",
    "code_shared_but_unexplained",
    "code_first_agree",
    "code_first_differ",
    "char_cosine",
    "char_cosine_high",
    "token_jaccard",
    "tfidf_cosine",
    "tfidf_cosine_high",
    "tfidf_known",
    "tfidf_unshared_rarest",
    "tfidf_shared_rarest",
    "tfidf_unshared_both_rarest",
    "rare_contained_min",
    "rare_contained_max",
    "token_containment",
    "length_ratio",
    "numbers_jaccard",
    "numbers_known",
    "numbers_unexplained",
    "numbers_substituted",
    "numbers_substituted_rarest",
    "short_codes_unexplained",
    "quantity_known",
    "quantity_agree",
    "quantity_conflict",
    "head_containment",
    "head_char_cosine",
    "purpose_one_sided",
    "colour_jaccard",
    "colour_known",
    "audience_known",
    "audience_conflict",
    "audience_one_sided",
    "bundle_one_sided",
    "body_vs_bundle",
    "brand_agree",
    "brand_conflict",
    "text_cosine",
    "text_cosine_high",
    "text_known",
    "image_cosine",
    "image_known",
    "price_log_ratio",
    "price_known",
    "description_cosine",
    "description_known",
)
_PRICE_CAP = 3.0  # |ln(price ratio)| beyond e^3 (20x) says nothing more
# A title word is rare in the store when its IDF is at least this share of a word never seen
# (of 7,000 offers, about 50 or fewer carry it): a product's own name, not a shop's or a
# language's word for "shoes" or "men" ("Chaussures" / "Scarpe", "Herren" / "hombre")
RARE_SHARE = 0.6


@lru_cache(maxsize=200_000)
def _grams(text: str) -> tuple[dict[str, int], float]:
    """Character 3-grams of each word (padded by spaces) with counts, and the vector's norm."""
    padded = f" {' '.join(text.lower().split())} "
    grams = Counter(padded[i : i + 3] for i in range(len(padded) - 2))
    return dict(grams), math.sqrt(sum(c * c for c in grams.values()))


@dataclass(frozen=True)
class TokenWeights:
    """Inverse document frequency of title tokens over a corpus (a store's offers): a shared
    rare word ("Durham", "HypervenomX") says more than a shared common one ("watch", "black")."""

    idf: Mapping[str, float]
    unseen: float

    @classmethod
    def learn(cls, documents: Iterable[frozenset[str]]) -> TokenWeights:
        """Smoothed IDF, ln((1 + n) / (1 + df)) + 1, as scikit-learn's TfidfVectorizer."""
        frequency: Counter[str] = Counter()
        n = 0
        for tokens in documents:
            frequency.update(tokens)
            n += 1
        idf = {t: math.log((1 + n) / (1 + df)) + 1 for t, df in frequency.items()}
        return cls(idf, math.log(1 + n) + 1)

    def cosine(self, a: frozenset[str], b: frozenset[str]) -> float:
        """Cosine of the two token sets' IDF-weighted vectors."""
        if not a or not b:
            return 0.0

        def square(t: str) -> float:
            return self.idf.get(t, self.unseen) ** 2

        shared = sum(square(t) for t in a & b)
        return shared / math.sqrt(sum(map(square, a)) * sum(map(square, b)))

    def rare(self, tokens: Iterable[str], pair: frozenset[str] = frozenset()) -> list[str]:
        """The tokens rare in the corpus (`RARE_SHARE`), the two offers compared left out of
        their counts (one offer's, and the other's for tokens in `pair`): in a store of three
        offers, a word two of them share is still those two's own."""
        n = math.exp(self.unseen - 1) - 1  # the corpus size, as `learn` counted it
        cut = RARE_SHARE * self.unseen

        def idf_without_pair(t: str) -> float:
            df = (1 + n) / math.exp(self.idf.get(t, self.unseen) - 1) - 1
            return math.log((1 + n) / (1 + max(df - 1 - (t in pair), 0.0))) + 1

        return [t for t in tokens if idf_without_pair(t) >= cut]

    def rarest(self, tokens: Iterable[str]) -> float:
        """The highest IDF among `tokens` over that of a token never seen (0 when none): how
        specific the most specific of them is."""
        return max((self.idf.get(t, self.unseen) for t in tokens), default=0.0) / self.unseen


def char_cosine(a: str, b: str) -> float:
    """Cosine of the two texts' character 3-gram counts: robust to spacing, plurals, typos."""
    (ga, na), (gb, nb) = _grams(a), _grams(b)
    if not na or not nb:
        return 0.0
    if len(ga) > len(gb):
        ga, gb = gb, ga
    return sum(c * gb.get(g, 0) for g, c in ga.items()) / (na * nb)


class _TitleFacts(NamedTuple):
    quantities: frozenset[tuple[str, float]]
    numbers: frozenset[str]
    short_codes: frozenset[str]
    head: frozenset[str]
    purpose: bool
    audiences: frozenset[str]
    bundle: tuple[bool, bool]
    glued: str


@lru_cache(maxsize=200_000)
def _title_facts(title: str) -> _TitleFacts:
    """What the title-only signals read off a title (`OfferFeatures.title`, so a title cleaned
    of shop boilerplate is what they come from)."""
    return _TitleFacts(quantities(title), bare_numbers(title), short_codes(title),
                       title_head(title), names_a_purpose(title), audiences(title),
                       bundle_words(title), _glued(title, breaks=True))  # fmt: skip


_BREAK = "\x00"  # where a space or separator parted a number from what follows ("1060 6gb")
_POINT = "\x01"  # a decimal point (`read_numbers`): "2.5" is never "25"


def _glued(text: str, *, breaks: bool = False) -> str:
    """`text` lower-cased with its numbers read (`read_numbers`) and everything but letters
    a-z, digits and decimal points left out: "18-55mm" and "18 55 mm" both read "1855mm",
    "2,5 mm" reads "2.5mm" and not "25mm". With `breaks`, a separator after a digit leaves
    `_BREAK`, so "GTX1060 6GB" does not read as one number 10606 and "i7 8700 K" keeps the
    8700 that "i7-8700K" has only inside its code."""
    lowered = DECIMAL.sub(rf"\1{_POINT}\2", read_numbers(text.lower()))
    if breaks:
        lowered = re.sub(r"(?<=\d)[^a-z0-9\x01]+(?=[a-z0-9])", _BREAK, lowered)
    return re.sub(f"[^a-z0-9{_BREAK}{_POINT}]", "", lowered)


def _high(value: float) -> float:
    """The part of a similarity above 0.5, rescaled: lets a linear model bend at the top."""
    return max(0.0, value - 0.5) * 2


def _first_codes(a: OfferFeatures, b: OfferFeatures, relation: str) -> dict[str, float]:
    """Whether the codes each title names first (its product's, `features.first_code`) agree
    (equal or one family), and whether they differ while the titles share some other code:
    one page's product code listed beside another's ("W2CA0009 Shop WSCA0006" and
    "WSCA0006 Shop W7100052" are two watches)."""
    first_a, first_b = first_code(a.title, a.models), first_code(b.title, b.models)
    if first_a is None or first_b is None:
        return {"code_first_agree": 0.0, "code_first_differ": 0.0}
    agree = first_a == first_b or same_family(first_a, first_b)
    shared = relation in ("exact", "family")
    return {"code_first_agree": float(agree), "code_first_differ": float(shared and not agree)}


def _alone(numbers: frozenset[str], other: frozenset[str], other_glued: str) -> set[str]:
    """Digit-bearing tokens of one title that the other never writes, separators and spaces
    ignored ("18-55mm" is in "18 55 mm"), numbers whole: "3" is not in "Pegasus 33" (a digit
    run is never found inside a longer one). `other_glued` is the other title's
    `_glued(..., breaks=True)`."""
    return {t for t in numbers - other if not _written_in(_glued(t), other_glued)}


@lru_cache(maxsize=100_000)
def _spelled(token: str) -> re.Pattern[str]:
    """Glued `token` as a pattern: across `_BREAK`s, with no digit glued on at either end.
    Compiled once per token: `re`'s own cache holds 512 patterns, fewer than a store's number
    tokens and rare words, and recompiling made this signal a fifth of `pair_signals`' time."""
    before = f"(?<![\\d{_POINT}])" if token[0].isdigit() else ""
    after = f"(?![\\d{_POINT}])" if token[-1].isdigit() else ""
    if token.isdigit():
        # a number is not found inside a code: "8700" is not in "i7-8700K" (a code's letters
        # may follow its own digits: "SRP581" is in "SRP581K1")
        after = f"(?![\\da-z{_POINT}])"
    return re.compile(before + f"{_BREAK}?".join(map(re.escape, token)) + after)


@lru_cache(maxsize=200_000)
def _written_in(token: str, glued: str) -> bool:
    """Whether glued `token` occurs in `glued`, across its breaks, with no digit glued on at
    either end."""
    return not token or _spelled(token).search(glued) is not None


def _rare_contained(
    tokens: frozenset[str], other_tokens: frozenset[str], weights: TokenWeights, other_glued: str
) -> float:
    """The share of a title's store-rare words the other title writes too (glued, so
    "Rosegold" is in "rose gold"; 0 when it has none): what two offers of one product share
    whatever language each shop writes in, where their common words are translated."""
    rare = weights.rare(tokens, other_tokens)
    if not rare:
        return 0.0
    return sum(_written_in(_glued(t), other_glued) for t in rare) / len(rare)


def _differences(
    a: OfferFeatures, b: OfferFeatures, fa: _TitleFacts, fb: _TitleFacts,
    weights: TokenWeights | None,
) -> dict[str, float]:  # fmt: skip
    """What tells two titles apart when each has something the other lacks: a substitution
    ("evoSPEED 4.4" vs "1.4", "13 Retro Bred" vs "Chicago") says variant, where an addition
    (one title the other plus shop words) does not; an audience each names ("Men's" vs
    "Junior"); a bundle beside the bare product. Rarity is the store's own IDF."""
    alone_a = _alone(a.numbers, b.numbers, fb.glued)
    alone_b = _alone(b.numbers, a.numbers, fa.glued)
    substituted = bool(alone_a and alone_b)
    both_audiences = bool(fa.audiences and fb.audiences)
    (kit_a, body_a), (kit_b, body_b) = fa.bundle, fb.bundle
    out = {
        "numbers_substituted": float(substituted),
        "audience_known": float(both_audiences),
        "audience_conflict": float(both_audiences and not fa.audiences & fb.audiences),
        "audience_one_sided": float(bool(fa.audiences) != bool(fb.audiences)),
        "bundle_one_sided": float(kit_a != kit_b),
        "body_vs_bundle": float(
            (body_a and kit_b and not kit_a) or (body_b and kit_a and not kit_b)
        ),
        "tfidf_unshared_both_rarest": 0.0,
        "numbers_substituted_rarest": 0.0,
    }
    if weights is not None:
        out["tfidf_unshared_both_rarest"] = min(
            weights.rarest(a.tokens - b.tokens), weights.rarest(b.tokens - a.tokens)
        )
        if substituted:
            out["numbers_substituted_rarest"] = min(
                weights.rarest(alone_a), weights.rarest(alone_b)
            )
    return out


def pair_signals(
    a: OfferFeatures,
    b: OfferFeatures,
    *,
    text_sim: float | None = None,
    image_sim: float | None = None,
    weights: TokenWeights | None = None,
) -> dict[str, float]:
    """Every signal of `SIGNALS` for one pair (see the module docstring).

    Model codes count as explained when the other offer writes them in its title or its
    description.
    """
    relation, unexplained, siblings = code_relation(
        a.models, b.models, f"{a.title} {a.description}", f"{b.title} {b.description}"
    )
    chars = char_cosine(a.title, b.title)
    shared = len(a.tokens & b.tokens)
    out = {
        "code_exact": float(relation == "exact"),
        "code_family": float(relation == "family"),
        "code_contained": float(relation == "contained"),
        "code_conflict": float(relation == "conflict"),
        "code_one_sided": float(relation == "one-sided"),
        "code_unexplained": min(unexplained, 3) / 3,
        "code_siblings": float(siblings),
        # a shared series code (ML370) beside different part numbers: the linear model needs
        # this case apart from a plain shared code
        "code_shared_but_unexplained": float(relation in ("exact", "family") and unexplained > 0),
        "char_cosine": chars,
        "char_cosine_high": _high(chars),
        **_first_codes(a, b, relation),
        "token_jaccard": shared / len(a.tokens | b.tokens) if a.tokens or b.tokens else 0.0,
        "token_containment": shared / min(len(a.tokens), len(b.tokens))
        if a.tokens and b.tokens
        else 0.0,
        "length_ratio": min(len(a.tokens), len(b.tokens)) / max(len(a.tokens), len(b.tokens), 1),
    }
    fa, fb = _title_facts(a.title), _title_facts(b.title)
    tfidf = weights.cosine(a.tokens, b.tokens) if weights is not None else 0.0
    out["tfidf_known"] = float(weights is not None)
    out["tfidf_cosine"] = tfidf
    out["tfidf_cosine_high"] = _high(tfidf)
    # the most specific word one title has and the other lacks ("Volt" vs "Quantum", "SG" vs
    # "FG") tells variants apart that share every common word; the most specific shared word
    # (a product line's name) says the opposite
    if weights is not None:
        rare_a = _rare_contained(a.tokens, b.tokens, weights, fb.glued)
        rare_b = _rare_contained(b.tokens, a.tokens, weights, fa.glued)
        out["rare_contained_min"], out["rare_contained_max"] = sorted((rare_a, rare_b))
        out["tfidf_unshared_rarest"] = weights.rarest(a.tokens ^ b.tokens)
        out["tfidf_shared_rarest"] = weights.rarest(a.tokens & b.tokens)
    else:
        out["tfidf_unshared_rarest"] = out["tfidf_shared_rarest"] = 0.0
        out["rare_contained_min"] = out["rare_contained_max"] = 0.0
    # "GTX 1060" vs "GTX 1070", "EOS 70D" vs "6D", "Genio II" vs "Legend VI": a generation or
    # model each side has alone
    out["numbers_unexplained"] = (
        min(unexplained_numbers(fa.numbers, b.title), unexplained_numbers(fb.numbers, a.title), 2)
        / 2
    )
    out["short_codes_unexplained"] = float(
        bool(unexplained_short_codes(fa.short_codes, b.title))
        and bool(unexplained_short_codes(fb.short_codes, a.title))
    )
    stated, conflicting = quantity_relation(fa.quantities, fb.quantities)
    out["quantity_known"] = float(stated > 0)
    out["quantity_agree"] = float(stated > 0 and not conflicting)
    out["quantity_conflict"] = min(conflicting, 2) / 2
    # the product's name comes first; shops append their own words after a separator
    out["head_containment"] = (
        (len(fa.head & b.tokens) / len(fa.head) + len(fb.head & a.tokens) / len(fb.head)) / 2
        if fa.head and fb.head
        else 0.0
    )
    out["head_char_cosine"] = char_cosine(" ".join(sorted(fa.head)), " ".join(sorted(fb.head)))
    # "Battery for HERO4" beside "GoPro HERO4 Black": an accessory and what it fits
    out["purpose_one_sided"] = float(fa.purpose != fb.purpose)
    out.update(_differences(a, b, fa, fb, weights))
    numbers_known = bool(a.numbers and b.numbers)
    out["numbers_known"] = float(numbers_known)
    out["numbers_jaccard"] = (
        len(a.numbers & b.numbers) / len(a.numbers | b.numbers) if numbers_known else 0.0
    )
    colours_known = bool(a.colors and b.colors)
    out["colour_known"] = float(colours_known)
    out["colour_jaccard"] = (
        len(a.colors & b.colors) / len(a.colors | b.colors) if colours_known else 0.0
    )
    brands_known = bool(a.brand and b.brand)
    out["brand_agree"] = float(brands_known and a.brand == b.brand)
    out["brand_conflict"] = float(brands_known and a.brand != b.brand)
    for name, value in (("text", text_sim), ("image", image_sim)):
        known = value is not None
        out[f"{name}_known"] = float(known)
        out[f"{name}_cosine"] = min(max(float(value), 0.0), 1.0) if known else 0.0
    out["text_cosine_high"] = _high(out["text_cosine"])
    prices_known = bool(
        a.price and b.price and (a.currency == b.currency or not (a.currency and b.currency))
    )
    out["price_known"] = float(prices_known)
    out["price_log_ratio"] = (
        min(abs(math.log(a.price / b.price)), _PRICE_CAP) / _PRICE_CAP if prices_known else 0.0
    )
    descriptions_known = bool(a.description and b.description)
    out["description_known"] = float(descriptions_known)
    out["description_cosine"] = (
        char_cosine(a.description, b.description) if descriptions_known else 0.0
    )
    return out
