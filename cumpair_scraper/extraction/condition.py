"""An offer's condition (new, used, refurbished, damaged) from schema.org and its title's words.

Values are the schema.org OfferItemCondition short names the store keeps
(`cumpair.index.records.CONDITIONS`). A stated `itemCondition` of anything but new is taken as
stated; words in the title that say refurbished, used, open box or damaged (in several languages)
win over a stated "new", which shop templates print on every page. The title never makes an offer
new, and words that only describe what the product is for ("for used cartridges", "Renewal
Filter", "for every occasion") do not count: ambiguous words count only standing on their own
(in brackets, between separators, ending the title, or "used" opening a title or segment as
used-goods shops write "Used Canon EOS 70D - Good"), and no word counts right after "for",
"with", "für", "pour"...
"""

from __future__ import annotations

import re

# Words that say the condition wherever they stand in a title (whole words only).
_ANYWHERE = {
    "Refurbished": (
        "refurbished", "reconditioned", "generalüberholt", "generalueberholt",
        "reconditionné", "reconditionnée", "reconditionnés", "reconditionnées",
        "ricondizionato", "ricondizionata", "ricondizionati", "reacondicionado",
        "reacondicionada", "recondicionado", "recondicionada", "gereviseerd", "odnowiony",
        "recertified", "factory recertified",
    ),
    "Used": (
        "pre-owned", "preowned", "second-hand", "second hand", "secondhand", "b-ware",
        "b ware", "open box", "open-box", "openbox", "ex-demo", "ex demo", "ex-display",
        "gebrauchtware", "vorführgerät", "vorfuehrgeraet", "wie neu", "like new",
        "d'occasion", "comme neuf", "seminuevo", "seminueva", "tweedehands",
        "begagnad", "używany", "gebraucht", "demo unit", "vorführmodell", "ausstellungsstück",
        "opened box", "fair condition", "good condition", "very good condition",
        "excellent condition", "acceptable condition",
    ),
}  # fmt: skip
# Words that also name other things ("used cartridges", "Special Occasion", "damaged hair"):
# they count only as a segment of their own or ending the title.
_ON_THEIR_OWN = {
    "Refurbished": ("renewed", "refurb", "renovado", "renovada"),
    "Used": (
        "used", "gebrauchte", "gebrauchter", "gebrauchtes", "usato", "usata", "usado", "usada",
        "occasion", "gebruikt", "brugt",
    ),
    "Damaged": (
        "damaged", "defective", "for parts", "beschädigt", "defekt", "endommagé",
        "danneggiato", "dañado",
    ),
}  # fmt: skip
# Of those, the ones that may also end a title after the product's name ("Bohrmaschine
# gebrauchte", "Kamera usata"); "Special Occasion" or "Repair Cream Damaged" may not.
_MAY_END = frozenset(
    {
        "used", "renewed", "gebrauchte", "gebrauchter", "gebrauchtes", "usato", "usata",
        "usado", "usada", "gebruikt", "brugt", "defekt", "beschädigt",
    }
)  # fmt: skip
# Of those, the ones that also open a title or a segment before the product's name, as used-goods
# shops write them ("Used Canon EOS 70D Body - Good", "Usado iPhone 11").
_MAY_START = frozenset(
    {"used", "usado", "usada", "usato", "usata", "gebrauchte", "gebrauchter", "gebrauchtes"}
)
# Grades that may follow a condition word in its segment ("Used - Like New", "(Renewed Premium)").
_GRADES = (
    "like new", "very good", "good", "acceptable", "excellent", "fair", "premium", "grade a",
    "grade b", "grade c", "sehr gut", "gut", "wie neu", "comme neuf", "très bon", "bon état",
    "condition", "zustand", "item", "artikel", "product", "produkt", "ware",
)  # fmt: skip
# A condition word right after one of these describes something else ("for used cartridges").
_GUARDS = frozenset(
    {
        "for", "with", "from", "to", "fits", "fit", "fitting", "suits", "be", "been", "being",
        "is", "are", "was", "get", "gets", "most", "widely", "commonly", "often", "when", "für",
        "fur", "mit", "aus", "zum", "zur", "bei", "pour", "avec", "per", "con", "para",
    }
)  # fmt: skip
_SEPARATORS = re.compile(r"\s*(?:[()\[\]{}|/:;,·•\"*]|\s-\s|^-\s|\s-$)\s*")
# Typographic apostrophes and dashes, read as their ASCII forms.
_ASCII = str.maketrans({"\u2019": "'", "\u2013": "-", "\u2014": "-"})
_STATED = {
    "newcondition": "New",
    "new": "New",
    "usedcondition": "Used",
    "used": "Used",
    "refurbishedcondition": "Refurbished",
    "refurbished": "Refurbished",
    "damagedcondition": "Damaged",
    "damaged": "Damaged",
}


def _phrases(words: tuple[str, ...]) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"[\s-]+") for w in sorted(words, key=len)[::-1])


_ANYWHERE_RE = {
    name: re.compile(rf"(?<![\w'-])(?:{_phrases(words)})(?![\w-])")
    for name, words in _ANYWHERE.items()
}
_ON_THEIR_OWN_RE = {
    name: re.compile(rf"^(?:{_phrases(words)})(?:[\s-]+(?:{_phrases(_GRADES)}))*$")
    for name, words in _ON_THEIR_OWN.items()
}
_STARTING_RE = re.compile(rf"^(?:{_phrases(tuple(_MAY_START))})\s+\w")
_ENDING_RE = {
    name: re.compile(rf"(?<![\w'-])(?:{_phrases(tuple(w for w in words if w in _MAY_END))})$")
    for name, words in _ON_THEIR_OWN.items()
    if any(w in _MAY_END for w in words)
}


def stated_condition(value: str | None) -> str | None:
    """A schema.org itemCondition (short name, full name or URL; OpenGraph's "new", "used",
    "refurbished") as one of the store's `CONDITIONS`; None when absent or not a condition."""
    if not value:
        return None
    key = re.sub(r"[^a-z]", "", value.rstrip("/").rsplit("/", 1)[-1].lower())
    return _STATED.get(key)


def title_condition(title: str | None) -> str | None:
    """The condition a title's words say (never "New"); None when they say none."""
    if not title:
        return None
    text = " ".join(title.casefold().translate(_ASCII).split())
    for name, pattern in _ANYWHERE_RE.items():
        if any(not _guarded(text, m.start()) for m in pattern.finditer(text)):
            return name
    segments = [s for s in _SEPARATORS.split(text) if s]
    for name, pattern in _ON_THEIR_OWN_RE.items():
        if any(pattern.match(segment) for segment in segments):
            return name
    if any(_STARTING_RE.match(segment) for segment in segments):
        return "Used"
    for name, pattern in _ENDING_RE.items():
        match = pattern.search(segments[-1]) if segments else None
        if match is not None and not _guarded(segments[-1], match.start()):
            return name
    return None


def _guarded(text: str, start: int) -> bool:
    """Whether the word at `start` follows a guard word ("for", "für"...)."""
    before = text[:start].split()
    return bool(before) and before[-1].strip("(),:;") in _GUARDS


def item_condition(stated: str | None, title: str | None) -> str | None:
    """The offer's condition: a stated one other than new, else the title's words, else the
    stated "new" (see the module docstring); None when neither says."""
    condition = stated_condition(stated)
    if condition is not None and condition != "New":
        return condition
    return title_condition(title) or condition
