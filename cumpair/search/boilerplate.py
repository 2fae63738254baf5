"""Title boilerplate learned from a store's own offers: the shop's name and template text.

Shops end their titles with the same words whatever they sell ("... Watches | Costello Jewelry
Company", "... - WATCH SHOP.com", "... - footstop"). Left in, that tail makes two different
products of one shop look alike (title neighbours, character and word similarity) and the same
product in two shops look different, so groups form by shop template instead of by product.
No fixed list says what a template is: a title ending counts as boilerplate only when the
offers themselves show it, i.e. it ends many titles (`min_titles`), almost only ever at the end
(`min_end_share`: a category word such as "watch" ends some titles but sits inside most), after
many different words (`min_contexts`: one product's repeated title is not a template). An
ending grows a word to the left only while most of its titles share that word (`min_extend`),
and never takes a word with a digit: codes, sizes and prices tell products apart. Where
offers carry a real shop, each shop's own titles are learned apart, so one shop's template is
found even when it is rare in the store; offers whose shop holds too few titles are learned
together. Nothing here changes model codes, brands or GTINs: only the text compared.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from cumpair.search.features import (
    WORD,
    OfferFeatures,
    clean_text,
    number_tokens,
    title_tokens,
)

_SEPARATORS = " \t|-\u2013\u2014\u00b7\u2022:,;/*~"  # what shops put before their tail
_LONGEST = 6  # words in the longest template ending learned


def _words(title: str) -> list[re.Match[str]]:
    return list(WORD.finditer(clean_text(title)))


@dataclass(frozen=True)
class TitleBoilerplate:
    """Title endings (lower-case word tuples) learned to be shop boilerplate (`learn`)."""

    endings: frozenset[tuple[str, ...]] = frozenset()

    @classmethod
    def learn(
        cls,
        titles: Sequence[str],
        shops: Sequence[str] | None = None,
        *,
        min_titles: int = 5,
        min_end_share: float = 0.8,
        min_contexts: int = 3,
        min_extend: float = 0.5,
    ) -> TitleBoilerplate:
        """Endings of 1-6 digit-free words that end `min_titles`+ titles of one source (a shop
        with that many titles, or all the others together), sit at the end in `min_end_share`
        of the titles of that source holding them, follow `min_contexts`+ different words, and
        end `min_extend` of the titles their one-word-shorter ending ends."""
        if shops is not None and len(shops) != len(titles):
            raise ValueError("one shop per title expected")
        sources: dict[str, list[list[str]]] = defaultdict(list)
        counts = Counter(shops or ())
        for n, title in enumerate(titles):
            shop = shops[n] if shops is not None else ""
            source = shop if shop and counts[shop] >= min_titles else ""
            sources[source].append([m.group(0).lower() for m in _words(title)])
        endings: set[tuple[str, ...]] = set()
        for documents in sources.values():
            endings |= _source_endings(
                documents, min_titles, min_end_share, min_contexts, min_extend
            )
        return cls(frozenset(endings))

    def remove(self, title: str) -> str:
        """`title` without its longest learned ending (unchanged when none applies, or when
        the ending is all the title has: two words of its own always stay)."""
        text = clean_text(title)
        words = _words(text)
        lowered = tuple(m.group(0).lower() for m in words)
        for size in range(min(_LONGEST, len(words) - 2), 0, -1):
            if lowered[-size:] in self.endings:
                return text[: words[-size].start()].rstrip(_SEPARATORS)
        return text


def _source_endings(
    documents: Iterable[list[str]],
    min_titles: int,
    min_end_share: float,
    min_contexts: int,
    min_extend: float,
) -> set[tuple[str, ...]]:
    """The boilerplate endings of one source's titles (word lists), see `TitleBoilerplate.learn`."""
    ends: Counter[tuple[str, ...]] = Counter()
    before: dict[tuple[str, ...], set[str]] = defaultdict(set)
    documents = list(documents)
    for words in documents:
        for size in range(1, min(_LONGEST, len(words) - 2) + 1):
            if any(c.isdigit() for c in words[-size]):
                break
            ending = tuple(words[-size:])
            ends[ending] += 1
            before[ending].add(words[-size - 1])
    frequent = {
        e
        for e, c in ends.items()
        if c >= min_titles
        and len(before[e]) >= min_contexts
        and (len(e) == 1 or c >= min_extend * ends[e[1:]])
    }
    if not frequent:
        return set()
    anywhere: Counter[tuple[str, ...]] = Counter()
    sizes = {len(e) for e in frequent}
    for words in documents:
        seen = {
            tuple(words[i : i + size])
            for size in sizes
            for i in range(len(words) - size + 1)
            if tuple(words[i : i + size]) in frequent
        }
        anywhere.update(seen)
    return {e for e in frequent if ends[e] >= min_end_share * anywhere[e]}


def without_boilerplate(
    features: Sequence[OfferFeatures], learned: TitleBoilerplate | None = None
) -> list[OfferFeatures]:
    """`features` with title boilerplate removed from the text they compare (title, title
    tokens and numbers); codes, brand and GTIN stay. `learned` None: learned from these offers
    themselves (a full regroup); a partial regroup passes what its shops' titles teach."""
    if learned is None:
        learned = TitleBoilerplate.learn([f.title for f in features], [f.shop for f in features])
    if not learned.endings:
        return list(features)
    out = []
    for offer in features:
        title = learned.remove(offer.title)
        if title == offer.title:
            out.append(offer)
            continue
        out.append(
            replace(offer, title=title, tokens=title_tokens(title), numbers=number_tokens(title))
        )
    return out
