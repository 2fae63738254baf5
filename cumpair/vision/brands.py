"""Brand names in product titles: a shipped list (brands.txt) plus the brands a caller has seen.

Shops often print the brand only in the title ("Samsung Side-by-Side RS6GA884CSL, 178 cm").
`BrandIndex.find` returns the longest known name at the earliest place in the text, matched
word by word with case, accents and punctuation ignored ("s.Oliver", "CoolerMaster" =
"Cooler Master"). It never answers with a brand that follows "for" / "compatible with" (a case
*for* an iPhone is not an Apple product) and, away from the start of the title, only with a
capitalised word, so prose ("we think") does not name brands.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

__all__ = ["BrandIndex", "BrandMatch", "shipped_brands"]

_TOKEN_RE = re.compile(r"[^\W_]+")
# A brand right after these words is what the product fits, not who made it.
_FITS_WORDS = frozenset(
    {"for", "fits", "fit", "compatible", "with", "für", "passend", "kompatibel", "pour",
     "per", "para", "voor", "replacement", "ersatz"}
)  # fmt: skip
_MAX_WORDS = 5  # the longest brand name in words
# Titles name the maker early ("Damskie Nike Air Max", "Fair Condition*: Apple MacBook"); a
# brand deep in a title is usually an accessory or a part ("..., .300 WSM, Nikon BDC Scope").
# A later field of a joined title (after a quote, "|" or " - ") starts afresh.
_LEAD_WORDS = 6
_FIELD_BREAK_RE = re.compile(r"[\"|»«·•]|\s[-\u2013]\s")


@dataclass(frozen=True, slots=True)
class BrandMatch:
    """A brand found in text: its usual spelling and where the text names it."""

    name: str
    start: int
    end: int


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


class BrandIndex:
    """Known brand names, looked up by their folded words.

    Names added later win over earlier ones with the same words, so a store's own spelling of
    a brand ("SAMSUNG" from its structured data) replaces the shipped one.
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._names: dict[tuple[str, ...], str] = {}
        for name in names:
            self.add(name)

    def __len__(self) -> int:
        return len(set(self._names.values()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._names

    def copy(self) -> BrandIndex:
        other = BrandIndex()
        other._names = dict(self._names)
        return other

    def extended(self, names: Iterable[str]) -> BrandIndex:
        """A copy that also knows `names` (e.g. the brands a store has seen)."""
        other = self.copy()
        for name in names:
            other.add(name)
        return other

    def add(self, name: str) -> None:
        """Learn one brand name; blank names and names without a letter are ignored."""
        if not isinstance(name, str):
            raise TypeError(f"brand names are str, got {type(name).__name__}")
        name = " ".join(name.split())
        key = self._key(name)
        if not key or len(key) > _MAX_WORDS or not any(ch.isalpha() for ch in name):
            return
        self._names[key] = name
        if len(key) > 1:
            self._names.setdefault(("".join(key),), name)  # "CoolerMaster"

    @staticmethod
    def _key(name: str) -> tuple[str, ...]:
        return tuple(_fold(word) for word in _TOKEN_RE.findall(name))

    def find(self, text: str) -> BrandMatch | None:
        """The known brand the text names first (longest name at that place), or None."""
        words = list(_TOKEN_RE.finditer(text))
        folded = [_fold(w.group()) for w in words]
        lead = 0  # words since the last field break
        for index in range(len(words)):
            gap = text[words[index - 1].end() : words[index].start()] if index else ""
            lead = 0 if index and _FIELD_BREAK_RE.search(gap) else lead + (index > 0)
            if lead >= _LEAD_WORDS or (index and folded[index - 1] in _FITS_WORDS):
                continue
            for size in range(min(_MAX_WORDS, len(words) - index), 0, -1):
                name = self._names.get(tuple(folded[index : index + size]))
                if name is None and size > 1:
                    name = self._names.get(("".join(folded[index : index + size]),))
                if name is None:
                    continue
                span = words[index : index + size]
                printed = text[span[0].start() : span[-1].end()]
                if self._plausible(name, printed, at_start=not text[: span[0].start()].strip()):
                    return BrandMatch(name, span[0].start(), span[-1].end())
        return None

    @staticmethod
    def _plausible(name: str, printed: str, *, at_start: bool) -> bool:
        if len(name) <= 3 and name.isupper():
            return printed.replace(".", "").isupper()  # HP, LG, WD: never "hp", "lg"
        return at_start or printed[0].isupper() or printed[0].isdigit()


@lru_cache(maxsize=1)
def _shipped_names() -> tuple[str, ...]:
    text = resources.files("cumpair.vision").joinpath("brands.txt").read_text(encoding="utf-8")
    return tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def shipped_brands(extra: Iterable[str] = ()) -> BrandIndex:
    """A new index of the shipped list (see brands.txt for its source) plus `extra` names."""
    return BrandIndex(_shipped_names()).extended(extra)
