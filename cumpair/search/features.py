"""What the matcher compares about an offer: canonical GTIN, model codes, brand, specs, tokens.

Shops word the same product differently ("ACME AA-100X Jigsaw 36V", "Jigsaw AA-100X by Acme,
36 V"); this module reduces an offer to comparable facts so `matching` only compares values.
A model code is what identifies one product among its siblings (AA-100X, 749361-066, DAVIS50B);
a spec (1080P, 2.13GHz, 18-55mm, DDR3, LGA1151, 2x8GB) is shared by many products and is never
taken for one, or one shared "code" would merge different products.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal, NamedTuple

from cumpair.identifiers import normalize_gtin

# Units a number carries in titles ("36V", "2.13GHz", "6Gb/s", "4-port", "240pin", "1080p").
_UNITS = (
    "v|va|w|kw|kva|mw|a|ma|mah|ah|wh|ohms?|db|dbi|"
    "b|kb|mb|gb|tb|pb|kbs|mbs|gbs|bps|kbps|mbps|gbps|mt|mts|"
    "hz|khz|mhz|ghz|rpm|fps|ms|ns|s|h|min|"
    "mm|cm|m|km|nm|in|inch|inches|ft|yd|"
    "ml|cl|dl|l|g|kg|mg|lb|lbs|oz|"
    "mp|mpx|px|p|i|k|x|bit|bits|"
    "pcs?|pk|pack|ct|port|ports|pin|pins|pol|core|cores|slot|slots|bay|bays|"
    "th|st|nd|rd|gen|yr|yrs|year|years|atm|bar|lm|awg|c|f|"
    "zoll|stk|stuck|st|teilig|fach|piece|pieces"
)
# A number with a unit, a range or product of numbers with one ("18-55mm", "2x8GB",
# "1920x1080", "10x20x30cm"), optionally per second ("6Gb/s").
_SPEC = re.compile(
    rf"^\d+(?:[.,]\d+)?(?:\s*[-x/]\s*\d+(?:[.,]\d+)?)*-?(?:{_UNITS})?(?:/s|ps)?$", re.IGNORECASE
)
# Spec prefixes and technology names: memory, buses, sockets, ratings, sizes, apertures.
_SPEC_NAME = re.compile(
    r"^(?:(?:lp)?g?ddr\d*[a-z]?|pc\d*|sata\d*|pcie\d*|usb\d*(?:[.,]\d+)?c?|hdmi\d*(?:[.,]\d+)?|802\.?11\w*|cat\d+[a-z]?|lga\d+|am\d|"
    r"fm\d\+?|ip[x]?\d+|wifi\d*|bt\d|h26\d|x26\d|mp[34]|[345]g|gen\d+|"
    # apertures, with a lens line's letter: f/1.8G, f/4L, f3.5-5.6
    r"f/?\d+(?:[.,]\d+)?(?:-\d+(?:[.,]\d+)?)?[a-z]?|"
    r"(?:us|eu|uk|fr|de|it|size|gr|gr\u00f6\u00dfe|taille|talla)\d+(?:[.,]\d+)?|"
    r"\d+in\d+|\d+(?:[.,]\d+)?(?:x|-)?(?:ghz|mhz|gb|tb|mb)\w*)$",
    re.IGNORECASE,
)
# Text a shop puts before its own stock number ("Art.-Nr. 123456", "SKU: AB12"), not a model.
_SKU_LABEL = re.compile(
    r"(?:\bsku|\bart(?:ikel)?\.?-?\s*nr|\bbestell-?nr|\bitem\s*(?:no|nr|#)|\bartnr|\bplu)"
    r"\.?\s*[:#]?\s*([A-Za-z0-9][A-Za-z0-9\-./]*)",
    re.IGNORECASE,
)
# A token: letters and digits, possibly with - / . inside ("AA-100X", "2531.80.00").
_CODE = re.compile(r"[A-Za-z0-9]+(?:[-/.][A-Za-z0-9]+)*")
_DIGIT_CODE = re.compile(r"^\d+(?:[-./]\d+)+$")
_DOMAIN = re.compile(
    r"\.(?:com|net|org|de|nl|fr|it|es|pl|be|at|ch|se|dk|co\.uk|uk|eu|ru|cz)$", re.I
)
WORD = re.compile(r"[^\W_]+", re.UNICODE)  # a run of letters and digits
_NUMBER_UNIT = re.compile(
    r"(\d+(?:[.,]\d+)?)\s+(v|w|kw|gb|tb|ml|l|mah|mm|cm|kg|g|mp|hz|ghz|mhz|in)\b", re.IGNORECASE
)
# What data exports leave in titles: RDF language tags ("...Tweakers"@NL) and "Null" fields.
_LANG_TAG = re.compile(r'"@[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})?')
_NULL = re.compile(r'"null"|\bnull\b', re.IGNORECASE)
_STOPWORDS = frozenset(
    {"by", "the", "a", "an", "and", "with", "for", "of", "in", "from", "model", "new", "und",
     "mit", "für", "de", "la", "le", "et", "pour", "con", "per", "y", "en", "van", "met", "voor"}
)  # fmt: skip
# Specs whose disagreement proves two offers are different products (relative tolerance):
# capacity and electrical ratings are printed exactly; weights/sizes suffer unit rounding.
NUMERIC_SPECS: dict[str, float] = {
    "storage_gb": 0.01,
    "voltage_v": 0.01,
    "power_w": 0.01,
    "volume_ml": 0.02,
    "weight_g": 0.06,
}
# Absolute slack on top: small values printed in imperial units round coarsely ("0.4 oz" is
# anything from 0.35 to 0.45 oz, i.e. +-1.4 g; "0.5 fl oz" +-1.5 ml), far beyond 6% of 10 g.
ROUNDING_SLACK: dict[str, float] = {"weight_g": 1.5, "volume_ml": 1.5}
# Words of a company's legal form or sales region, never part of what a shopper calls the brand.
_LEGAL_SUFFIXES = frozenset(
    {"inc", "incorporated", "corp", "corporation", "co", "company", "ltd", "limited", "llc",
     "gmbh", "ag", "sa", "srl", "bv", "nv", "plc", "kg", "oy", "ab", "as", "aps", "asa", "spa",
     "sarl", "pty", "kk",
     "usa", "us", "america", "europe", "eu", "uk", "international", "intl", "global", "japan",
     "deutschland", "germany", "france", "group", "holdings", "electronics", "technologies"}
)  # fmt: skip
# Brands shops write in two ways that no spelling rule joins (keys are normalised brands).
BRAND_ALIASES: dict[str, str] = {
    "hewlettpackard": "hp",
    "hpinc": "hp",
    "westerndigital": "wd",
    "asustek": "asus",
    "asustekcomputer": "asus",
    "lgelectronics": "lg",
    "samsungelectronics": "samsung",
    "sonyelectronics": "sony",
    "tplink": "tplink",
    "bangolufsen": "bangandolufsen",
    "hugoboss": "boss",
}


# Basic colour terms in the languages shops write titles in, to one English name: a shoe in
# "Negro/Blanco" and one in "Nero/Bianco" agree; "Schwarz" and "Weiss" do not.
_COLOUR_WORDS = {
    "black": "black schwarz noir noire negro negra nero nera zwart czarny czarna czarne svart sort"
    " preto",
    "white": "white weiss weiß blanc blanche blanco blanca bianco bianca wit witte biały biała"
    " białe bialy biala biale vit hvid branco",
    "red": "red rot rouge rojo roja rosso rossa rood czerwony czerwona czerwone röd rød vermelho",
    "blue": "blue blau bleu azul blu blauw niebieski niebieska niebieskie blå navy marine"
    " granatowy",
    "green": "green grün gruen vert verte verde groen zielony zielona zielone grön grøn",
    "yellow": "yellow gelb jaune amarillo amarilla giallo geel żółty gul amarelo",
    "grey": "grey gray grau gris grise grigio grijs szary szara szare grå cinza anthracite"
    " anthrazit antracite antracita",
    "brown": "brown braun marron brun marrón marrone bruin brązowy",
    "pink": "pink rosa roze różowy rose rosé rosado rosada",
    "purple": "purple lila violet violett morado viola paars fioletowy",
    "orange": "orange naranja arancione arancio oranje pomarańczowy",
    "silver": "silver silber argent argenté plata plateado plateada argento zilver srebrny",
    "gold": "gold oro goud złoty dorado dorada dorato doré",
    "beige": "beige",
}


def fold_accents(text: str) -> str:
    """`text` without diacritics ("Rosé" -> "Rose", "Marrón" -> "Marron"; ł and ß are letters
    of their own and stay), so words shops write with or without accents compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


COLOUR_NAMES: dict[str, str] = {
    fold_accents(word): colour for colour, words in _COLOUR_WORDS.items() for word in words.split()
}


def colour_names(text: str) -> frozenset[str]:
    """The basic colours `text` names, in English ("Nero/Bianco" -> black, white)."""
    words = WORD.findall(fold_accents(clean_text(text).lower()))
    return frozenset(COLOUR_NAMES[w] for w in words if w in COLOUR_NAMES)


# Whom a product is made for, in the languages shops write titles in: "Enfant", "Junior" and
# "Dziecięce" are one audience, "Men's" and "Women's" two; a shoe line sells each apart.
_AUDIENCE_WORDS = {
    "men": "men mens man homme hommes hombre hombres herren herr uomo heren męskie meskie meski"
    " męski masculino masculina mannen",
    "women": "women womens wmns woman femme femmes mujer mujeres damen dame donna dames damskie"
    " damski feminino feminina ladies lady vrouwen",
    "kids": "kids kid junior jr enfant enfants nino nina ninos kinder kind bambino bambini"
    " ragazzo ragazzi dziecięce dzieciece dziecięcy youth boys boy girls girl fille filles garcon"
    " garcons jongens meisjes infant baby toddler preschool",
}
# German and Dutch write the audience as the first part of a compound noun ("Damenuhr",
# "Herrenschuhe", "Kinderschuhe", "Herenhorloge"): a word starting so and ending in a product's
# noun. A word that only begins so is a name ("Herrenhausen", "Kindermann").
_AUDIENCE_PREFIXES = {"damen": "women", "dames": "women", "herren": "men", "heren": "men",
                      "kinder": "kids"}  # fmt: skip
_COMPOUND_NOUNS = (
    "uhr uhren chronograph chronographen horloge horloges schuh schuhe schoen schoenen"
    " sneaker sneakers stiefel laarzen sandalen slipper jacke jas hose broek shirt hemd pullover"
    " mantel kleid kleidung bekleidung mode tasche rucksack ring ringe kette armband schmuck"
    " parfum duft brille socken sokken rad fahrrad fiets helm handschuhe"
)
_COMPOUND = re.compile(
    rf"^({'|'.join(_AUDIENCE_PREFIXES)})[a-z]*(?:{'|'.join(_COMPOUND_NOUNS.split())})$"
)
# An audience word joined by a hyphen to one letter or digit is a product line's name: Casio's
# "Baby-G" is a watch, not a baby's. Not when the letter begins a hyphened word of its own:
# German "Herren-T-Shirt" and "Damen-V-Ausschnitt" still name whom they are for.
_LINE_NAME = re.compile(r"(?<![^\W_])[^\W\d_]+-[^\W_](?![^\W_])(?!-[^\W\d_]{2})")
# ... and written with a space ("Baby G"): a word, then one consonant standing alone that
# begins no hyphened word ("Herren T-Shirt"), is no "Men's" "s" without its apostrophe, no
# one-letter word (Polish "Męskie i Dziecięce", "w", "z"; Spanish "y") and no size: a clothing
# size ("Herren L", "Damen M") or a US shoe width ("Men D", "Women B", "N" narrow).
_SPACED_NAME = re.compile(r"(?<![^\W_])([^\W\d_]+)\s+(?![aeiouyswzbdlmn])[^\W\d_](?![^\W_])(?!-)")
AUDIENCE_NAMES: dict[str, str] = {
    fold_accents(word): audience
    for audience, words in _AUDIENCE_WORDS.items()
    for word in words.split()
}
# Words for both men and women: a "Unisex" watch a shop files under "Ladies" is the one it
# files under "Men's" too.
_BOTH_SEXES = frozenset({"unisex", "unisexe", "uniseks"})
# Words that make an offer a bundle ("EOS 80D + 18-135mm", "Kit", "w/ Ball Head") or the bare
# product ("Body only", "Boîtier nu", "Gehäuse"): a camera body and its kit are two products.
_BUNDLE_WORDS = frozenset(
    {"kit", "bundle", "combo", "set", "pack", "lot", "mit", "with", "objectif", "objetivo",
     "obiettivo", "objektiv", "lens", "lente", "lentille"}
)  # fmt: skip
# "w/ Ball Head" is with, "w/o Label" without; a lone "W" is watts ("650 W") or Nike's women's.
_WITH = re.compile(r"(?<![^\W_])w/(?!o(?![^\W_]))")
_BODY_WORDS = frozenset(
    {"body", "boitier", "gehause", "gehaeuse", "cuerpo", "corpo", "corps", "only"}
)


def audiences(text: str) -> frozenset[str]:
    """Whom `text` says the product is for: "men", "women", "kids" (none when it does not say)."""
    lowered = _LINE_NAME.sub(" ", fold_accents(clean_text(text).lower()))
    lowered = _SPACED_NAME.sub(lambda m: " " if m[1] in AUDIENCE_NAMES else m[0], lowered)
    words = WORD.findall(lowered)
    found = {AUDIENCE_NAMES[w] for w in words if w in AUDIENCE_NAMES}
    found |= {_AUDIENCE_PREFIXES[m.group(1)] for w in words if (m := _COMPOUND.match(w))}
    if _BOTH_SEXES.intersection(words) and "kids" not in found:  # "Unisex Junior": girls, boys
        found |= {"men", "women"}
    return frozenset(found)


def bundle_words(text: str) -> tuple[bool, bool]:
    """(names a bundle or an added part, names the bare product) for one title."""
    lowered = fold_accents(clean_text(text).lower())
    words = set(WORD.findall(lowered))
    kit = bool(words & _BUNDLE_WORDS) or "+" in lowered or bool(_WITH.search(lowered))
    return kit, bool(words & _BODY_WORDS)


def clean_text(text: str | None) -> str:
    """`text` without export debris (language tags, "Null" fields, quotes), spaces collapsed."""
    text = _LANG_TAG.sub(" ", text or "")
    text = _NULL.sub(" ", text).replace('"', " ")
    return " ".join(text.split())


# A run of digits with points or commas between them ("1,080", "2,5", "1.299,00", "2531.80.00"),
# not part of a longer one.
_NUMBER_RUN = re.compile(r"(?<![\d.,])\d+(?:[.,]\d+)+(?![.,]?\d)")
# Thousands grouped by one separator (1-3 digits, then groups of exactly three), optionally
# with cents after the other one: "1,080", "1.080" (German), "1.000.000", "1.299,00".
_THOUSANDS = re.compile(
    r"(?P<head>[1-9]\d{0,2})(?P<sep>[.,])\d{3}(?:(?P=sep)\d{3})*"
    r"(?:(?!(?P=sep))[.,](?P<cents>\d+))?"
)
# A decimal as `read_numbers` writes it, not inside a code's separated digits ("2531.80.00")
DECIMAL = re.compile(r"(?<![\d.,])(\d+)\.(\d+)(?![.,]?\d)")


# a run `_THOUSANDS` reads as a grouped number
_GROUPED = re.compile(
    r"(?<![\d.,])[1-9]\d{0,2}(?P<sep>[.,])\d{3}(?:(?P=sep)\d{3})*(?:[.,]\d+)?(?![.,]?\d)"
)


def _read_number(match: re.Match[str]) -> str:
    run = match.group(0)
    if grouped := _THOUSANDS.fullmatch(run):
        whole = re.sub(r"\D", "", run[: grouped.start("cents") - 1 if grouped["cents"] else None])
        return f"{whole}.{grouped['cents']}" if grouped["cents"] else whole
    if run.count(".") + run.count(",") == 1:
        return run.replace(",", ".")
    return run  # a code's separated digits ("2531.80.00", "T055.430.11.057.00")


@lru_cache(maxsize=200_000)
def read_numbers(text: str) -> str:
    """`text` with its numbers in one form, the one every signal reads: a point or comma before
    exactly three digits groups thousands ("1,080 W" and "1.080 W" are 1080 W), any other one
    between digits is a decimal point written "." ("2,5 mm" is 2.5 mm, never 25 mm). A run of
    several separated groups that is no grouped number is a code's, left as written
    ("2531.80.00", "T055.430.11.057.00")."""
    return _NUMBER_RUN.sub(_read_number, text)


def read_text(text: str | None) -> str:
    """`text` cleaned (`clean_text`) and its numbers read (`read_numbers`)."""
    return read_numbers(clean_text(text))


def canonical_code(value: str) -> str:
    """ "aa-100x", "AA 100X" and "AA100X" all become "AA100X" (separators are typography)."""
    return re.sub(r"[^A-Za-z0-9]", "", value).upper()


def is_spec(token: str) -> bool:
    """True for a quantity, dimension, resolution or technology name ("18-55mm", "DDR3")."""
    return bool(
        _SPEC.match(token) or _SPEC_NAME.match(token) or _SPEC_NAME.match(token.replace("-", ""))
    )


def _is_code(token: str) -> bool:
    code = canonical_code(token)
    if not any(c.isdigit() for c in code) or _DOMAIN.search(token):
        return False
    if code.isdigit():
        # Digits alone identify a product when written with separators (2531.80.00,
        # 749361-066) or long (75406, a vendor's article number); years, counts, prices and
        # ranges ("18-55") are short.
        if _DIGIT_CODE.match(token):
            return len(code) >= 6
        return token.isdigit() and len(code) >= 5
    if is_spec(token):
        return False
    separated = len(code) < len(token)
    return len(code) >= 4 or (separated and len(code) >= 3)


def model_codes(text: str, *, exclude: Iterable[str] = ()) -> frozenset[str]:
    """Model-number-like tokens of `text`, canonical (see `canonical_code`).

    Kept: tokens mixing letters and digits (>= 4 characters, or 3 with a separator inside:
    "X-T2"), and digit runs of 5+ or separated digit codes of 6+ digits. Dropped: specs
    (`is_spec`), web addresses, numbers a shop labels as its own stock number ("SKU: 123")
    and any canonical code in `exclude` (the shop's name, its internal SKU).
    """
    text = clean_text(text)
    skipped = {canonical_code(e) for e in exclude if e} | {
        canonical_code(m.group(1)) for m in _SKU_LABEL.finditer(text)
    }
    codes = set()
    for match in _CODE.finditer(text):
        token = match.group(0).strip("-./")
        if not _is_code(token):
            continue
        code = canonical_code(token)
        if code not in skipped:
            codes.add(code)
    return frozenset(codes)


def first_code(text: str, models: Iterable[str]) -> str | None:
    """The first of `models` (canonical codes) that `text` writes, in reading order: a title
    names its product's code first and then, often, a related item's or a compatible model's
    ("Calibre Diver W2CA0009 Shop WSCA0006"). A title that writes none of them has its code
    from the structured model (`offer_features`): that one code when it is the only one. None
    when there is none, or several the title does not write."""
    models = set(models)
    for match in _CODE.finditer(clean_text(text)):
        code = canonical_code(match.group(0).strip("-./"))
        if code in models:
            return code
    return next(iter(models)) if len(models) == 1 else None


CodeRelation = Literal["exact", "family", "contained", "conflict", "one-sided", "none"]


def same_family(a: str, b: str) -> bool:
    """True when one code is the other plus a short variant suffix or vendor prefix.

    DAVIS50B ~ DAVIS50, PSW110BK ~ PSW110, AVT75406 ~ 75406: the shorter must itself look like
    a code (a digit, 4+ characters) and the rest be letters, or a suffix of at most 4 characters.
    Siblings (DAVIS50B vs DAVIS50R, 749361-066 vs 749361-001) are not a family.
    """
    short, long = sorted((a, b), key=len)
    if len(short) < 4 or not any(c.isdigit() for c in short) or short == long:
        return False
    if long.startswith(short):
        rest = long[len(short) :]
        return len(rest) <= 4 and not (short[-1].isdigit() and rest.isdigit())
    if long.endswith(short):
        return long[: -len(short)].isalpha() and len(long) - len(short) <= 4
    return False


class CodeComparison(NamedTuple):
    """How two offers' model codes relate (see `code_relation`)."""

    relation: CodeRelation
    unexplained: int
    siblings: bool


def code_shape(code: str) -> str:
    """Letters as A, digits as 9: "DAVIS50B" -> "AAAAA99A"; siblings share a shape."""
    return "".join("9" if c.isdigit() else "A" for c in code)


def code_relation(
    a: frozenset[str], b: frozenset[str], a_text: str = "", b_text: str = ""
) -> CodeComparison:
    """How two offers' model codes relate, how many codes each side left unexplained, and
    whether the unexplained ones look like siblings.

    `relation` -- "exact": a code in common; "family": codes of one variant family (`same_family`);
    "contained": one offer's code is written inside the other's text with different spacing
    ("VisionU50" in "Vision U50") or in its description; "conflict": both carry codes and none
    of the above; "one-sided"/"none": one or neither offer carries a code. `unexplained` is the
    smaller number of codes a side has that the other side neither shares, contains nor has a
    family member of (two offers that each carry a code the other lacks are usually siblings
    even when they share a series code). `siblings`: an unexplained code of each side with the
    same `code_shape` (458418-B21 vs 488039-B21, DAVIS50B vs DAVIS50R): one product line, two
    different products.
    """
    if not a and not b:
        return CodeComparison("none", 0, False)
    a_flat, b_flat = canonical_code(clean_text(a_text)), canonical_code(clean_text(b_text))
    if not a or not b:
        written = any(x in b_flat for x in a) or any(y in a_flat for y in b)
        return CodeComparison("contained" if written else "one-sided", 0, False)

    def explained(code: str, others: frozenset[str], other_text: str) -> bool:
        return code in others or any(same_family(code, o) for o in others) or code in other_text

    left = [c for c in a if not explained(c, b, b_flat)]
    right = [c for c in b if not explained(c, a, a_flat)]
    shapes = {code_shape(c) for c in left if len(c) >= 4}
    siblings = any(code_shape(c) in shapes for c in right)
    unexplained = min(len(left), len(right))
    if a & b:
        relation: CodeRelation = "exact"
    elif any(same_family(x, y) for x in a for y in b):
        relation = "family"
    elif any(x in b_flat for x in a) or any(y in a_flat for y in b):
        relation = "contained"
    else:
        relation = "conflict"
    return CodeComparison(relation, unexplained, siblings)


def normalize_brand(value: str | None) -> str | None:
    """The comparison key of a brand: "Cooler Master", "CoolerMaster" -> "coolermaster",
    "Zalman USA Inc." -> "zalman", "Hewlett-Packard" -> "hp" (`BRAND_ALIASES`)."""
    if not value:
        return None
    text = unicodedata.normalize("NFKD", str(value)).encode("ascii", "ignore").decode()
    text = text.lower().replace("&", " and ").replace("+", " and ")
    text = re.sub(r"\b([a-z])[./]([a-z])\b\.?", r"\1\2", text).replace(".", "")  # S.A., A/S
    words = re.findall(r"[a-z0-9]+", text)
    while len(words) > 1 and words[-1] in _LEGAL_SUFFIXES:
        words.pop()
    key = "".join(words)
    if not key:
        return None
    return BRAND_ALIASES.get(key, key)


@dataclass(frozen=True)
class BrandLexicon:
    """Brands known to a store (normalised keys), to read a brand off a title that has none.

    Learned from the store itself: every brand field its offers carry, plus the words that
    open many of its titles and seldom appear anywhere else ("Canon EOS ...", "Nike Air ...").
    """

    brands: frozenset[str] = frozenset()
    max_words: int = 3

    @classmethod
    def learn(
        cls,
        titles: Iterable[str],
        brands: Iterable[str | None] = (),
        *,
        min_titles: int = 3,
        min_first_share: float = 0.6,
    ) -> BrandLexicon:
        """Brand fields, plus title-opening words seen in `min_titles`+ titles, first in
        `min_first_share` of them (so a word like "camera" that opens some titles does not)."""
        known = {b for b in (normalize_brand(x) for x in brands) if b}
        first: Counter[str] = Counter()
        anywhere: Counter[str] = Counter()
        for title in titles:
            words = [w.lower() for w in WORD.findall(clean_text(title))]
            if not words:
                continue
            first[words[0]] += 1
            anywhere.update(set(words))
        for word, count in first.items():
            if (
                count >= min_titles
                and count >= min_first_share * anywhere[word]
                and word.isalpha()
                and len(word) > 1
                and word not in _STOPWORDS
            ):
                known.add(normalize_brand(word) or word)
        return cls(frozenset(known))

    def find(self, title: str) -> str | None:
        """The first known brand written in `title` (longest spelling first at each word)."""
        if not self.brands:
            return None
        words = [w.lower() for w in WORD.findall(clean_text(title))]
        for start in range(len(words)):
            for size in range(min(self.max_words, len(words) - start), 0, -1):
                key = normalize_brand(" ".join(words[start : start + size]))
                if key in self.brands:
                    return key
        return None


# A quantity's unit -> (dimension, factor to the dimension's base unit). French writes bytes as
# octets (2 To, 64 Mo); binary and decimal prefixes differ by < 5% and compare within tolerance.
# A number glued after "x" counts ("2x8GB": 8 GB); one glued after other letters does not.
# Not units here: "in" ("2 in 1"), octets in lower case ("1 to 2"), and 2G-6G (networks).
_OCTETS = frozenset({"Ko", "Mo", "Go", "To"})
_NETWORK = re.compile(r"^[2-6]g$", re.IGNORECASE)
_QUANTITY_UNITS: dict[str, tuple[str, float]] = {
    **{u: ("bytes_gb", f) for units, f in (("kb ko", 1e-6), ("mb mo", 1e-3), ("gb go", 1.0),
                                           ("tb to", 1e3)) for u in units.split()},
    **{u: ("rate_mbps", f) for units, f in (("mb/s mbps mbit/s mo/s", 1.0), ("mbit", 1.0),
                                             ("gb/s gbps gbit/s", 1e3)) for u in units.split()},
    "hz": ("frequency_ghz", 1e-9), "khz": ("frequency_ghz", 1e-6),
    "mhz": ("frequency_ghz", 1e-3), "ghz": ("frequency_ghz", 1.0),
    "mm": ("length_mm", 1.0), "cm": ("length_mm", 10.0),
    "inch": ("length_mm", 25.4), "zoll": ("length_mm", 25.4), "pouces": ("length_mm", 25.4),
    "w": ("power_w", 1.0), "kw": ("power_w", 1e3), "v": ("voltage_v", 1.0),
    "mah": ("charge_mah", 1.0), "wh": ("energy_wh", 1.0), "mp": ("pixels_mp", 1.0),
    "ml": ("volume_ml", 1.0), "l": ("volume_ml", 1e3), "g": ("weight_g", 1.0),
    "kg": ("weight_g", 1e3), "rpm": ("speed_rpm", 1.0), "atm": ("water_atm", 1.0),
    "bar": ("water_atm", 1.0), "port": ("ports", 1.0), "ports": ("ports", 1.0),
    "puertos": ("ports", 1.0), "portas": ("ports", 1.0), "pin": ("pins", 1.0),
    "pins": ("pins", 1.0), "core": ("cores", 1.0), "cores": ("cores", 1.0),
}  # fmt: skip
# the units as one alternation, longest first so "mah" is tried before "m"
_QUANTITY_UNIT_ALTERNATION = "|".join(
    sorted((re.escape(u) for u in _QUANTITY_UNITS), key=len, reverse=True)
)
_QUANTITY = re.compile(
    r"(?<![^\W\dxX])(?<![\d.,])(\d+(?:[.,]\d+)?)\s*-?\s*("
    + _QUANTITY_UNIT_ALTERNATION
    + r")(?![^\W_])",
    re.IGNORECASE,
)
QUANTITY_TOLERANCE = 0.05  # 6144 MB vs 6 GB, 15.6" vs 396 mm
# a range with one unit after it ("18-55mm", "70-200 mm"): both ends are quantities
_UNIT_SPAN = re.compile(
    r"(?<![\w.,/:-])(\d+(?:[.,]\d+)?)[-\u2013\u2014~](\d+(?:[.,]\d+)?)(?=\s*("
    + _QUANTITY_UNIT_ALTERNATION
    + r")(?![^\W_]))",
    re.IGNORECASE,
)


def quantities(text: str) -> frozenset[tuple[str, float]]:
    """(dimension, value in its base unit) of every number-with-unit in `text`: "2To" and
    "2 TB" -> ("bytes_gb", 2000.0); "8GB (2x4GB)" -> 8 and 4 GB; "18-55mm" -> 18 and 55 mm
    (a range's low end is read too: 16-50mm vs 18-55mm conflicts). Two offers that state the same
    dimension with values neither shares are two products (64 GB vs 32 GB, 4-port vs 8-port)."""
    out = set()
    spans_read = _UNIT_SPAN.sub(
        lambda m: f"{m[1]}{m[3]} {m[2]}" if _is_span(m[1], m[2]) else m[0],
        fold_accents(read_text(text)),
    )
    for number, unit in _QUANTITY.findall(spans_read):
        dimension, factor = _QUANTITY_UNITS[unit.lower()]
        if _NETWORK.match(number + unit) or (unit.lower().endswith("o") and unit not in _OCTETS):
            continue
        value = float(number.replace(",", ".")) * factor
        if value > 0:
            out.add((dimension, value))
    return frozenset(out)


def _same_quantity(x: float, y: float) -> bool:
    return abs(x - y) <= QUANTITY_TOLERANCE * max(x, y)


def quantity_relation(
    a: frozenset[tuple[str, float]], b: frozenset[tuple[str, float]]
) -> tuple[int, int]:
    """(dimensions both state, how many of them conflict): a dimension conflicts when each side
    has a value the other lacks (8 GB + 256 GB vs 16 GB + 256 GB); one side's values all found
    on the other (2x4GB = 8 GB vs 8 GB) is agreement."""
    common = {d for d, _ in a} & {d for d, _ in b}
    conflicts = 0
    for dimension in common:
        xs = [v for d, v in a if d == dimension]
        ys = [v for d, v in b if d == dimension]
        a_alone = any(not any(_same_quantity(x, y) for y in ys) for x in xs)
        b_alone = any(not any(_same_quantity(x, y) for x in xs) for y in ys)
        conflicts += a_alone and b_alone
    return len(common), conflicts


_BARE_NUMBER = re.compile(r"(?<![\w.,/:])\d{1,4}(?![\w.,/:]*\d)(?![^\W_])")
# thousands grouped by a point, comma, apostrophe or space, cents after a point or a comma
# ("34 90 €" whose comma the source dropped stays unread: "LYTE 2 99 PLN" is a generation 2)
_AMOUNT = r"\d+(?:[.,'\s]\d{3})*(?:[.,]\d+)?"


@lru_cache(maxsize=1)
def _price_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """A price with its sign first, and one with it after ("90 $ 120" is "Max 90" priced $120).
    Built on first use: price-parser's import (0.1 s at load 5, with attrs) is paid by what
    reads title numbers, not by every import of this module (a ``--text`` query never reads)."""
    from price_parser.parser import CURRENCY_CODES, SAFE_CURRENCY_SYMBOLS

    # price-parser's currency lexicon (symbols such as "$", "€", "zł" and the ISO 4217 codes,
    # upper-case, less the codes that are English words: "TOP 10" is no price, and AMD, a chip
    # maker's name: "AMD 6380 Opteron", "AMD 990FX"), longest first
    currency = "|".join(
        re.escape(c)
        for c in sorted(
            set(SAFE_CURRENCY_SYMBOLS)
            | set(CURRENCY_CODES) - {"ALL", "AMD", "BOB", "CUP", "MAD", "MOP", "SOS", "TOP"},
            key=len,
            reverse=True,
        )
    )
    # a price is no part of a code: not followed by letters or digits ("MVR911EJCN", "CRC 32GB")
    # nor glued to a hyphen before it ("Y700-15ISK", "LA670WEGB-1BEF")
    return (
        re.compile(rf"(?<![^\W\d_])(?:{currency})\s?{_AMOUNT}(?![^\W_])"),
        re.compile(rf"(?<![\w.,-]){_AMOUNT}\s?(?:{currency})(?![^\W\d_])"),
    )


_SPAN = re.compile(r"(?<![\w.,/:-])(\d+(?:[.,]\d+)?)[-\u2013\u2014~](\d+(?:[.,]\d+)?)(?![.,]?\d)")


def _is_span(low: str, high: str) -> bool:
    """Whether "low-high" reads as a range ("18-55", "70-200", "9-10"): it rises, and its ends
    are of one magnitude (a dashed code such as "4-6880" or a socket "2011-3" is none)."""
    whole = [re.split(r"[.,]", end)[0] for end in (low, high)]
    return (
        float(low.replace(",", ".")) < float(high.replace(",", "."))
        and len(whole[1]) <= len(whole[0]) + 1
    )


def _without_prices_and_spans(text: str) -> str:
    """`text` with prices ("$899", "899,00 €", "EUR 49.99", "99 PLN") and numeric ranges
    (a lens's focal span "18-55mm", "70-200") blanked out: their numbers name no generation."""
    for price in _price_patterns():
        text = price.sub(" ", text)
    return _SPAN.sub(lambda m: " " if _is_span(m.group(1), m.group(2)) else m.group(0), text)


def bare_numbers(text: str) -> frozenset[str]:
    """Numbers of 1-4 digits standing alone, without a unit ("GTX 1060", "Air Jordan 11",
    "Series 3"): a product line's generation or tier, which siblings differ in. Prices and
    ranges are not read: two shops price one camera differently, and "18-55mm" is its lens;
    nor is a number grouped in thousands ("nur 1.840", "1,299"), a price or a count, never a
    generation."""
    cleaned = _without_prices_and_spans(read_numbers(_GROUPED.sub(" ", clean_text(text))))
    return frozenset(m.group(0).lstrip("0") or "0" for m in _BARE_NUMBER.finditer(cleaned))


def unexplained_numbers(numbers: frozenset[str], other_text: str) -> int:
    """How many of `numbers` the other offer's text never writes as a digit run of its own
    ("1060" is in "GTX1060" and "gtx-1060", not in "10600")."""
    digits_of_other = _digit_runs(other_text)
    return sum(1 for n in numbers if n not in digits_of_other)


@lru_cache(maxsize=100_000)
def _digit_runs(text: str) -> frozenset[str]:
    """The numbers `text` writes, leading zeros dropped (cached: grouping asks per pair): each
    run of digits, a decimal whole ("2.5" writes neither 2 nor 5 nor 25), and none that
    letters other than a unit follow: "8700" is in "i7 8700" and "GTX8700", not in
    "i7-8700K" (a number inside a code is not that number), "6" is in "6GB"."""
    read = read_text(text)
    runs = {m[0] for m in DECIMAL.finditer(read)}
    for m in re.finditer(r"\d+", DECIMAL.sub(lambda d: " " * len(d[0]), read)):
        followed = m.end() < len(read) and read[m.end()].isalpha()
        if not followed or _QUANTITY.match(read, m.start()):
            runs.add(m[0].lstrip("0") or "0")
    return frozenset(runs)


@lru_cache(maxsize=100_000)
def _glued(text: str) -> str:
    """`text` as lower-case words with letters and digits glued across spaces ("eos 70 d" ->
    "eos70d"), for `unexplained_short_codes` (cached: grouping asks per pair)."""
    flat = " ".join(re.findall(r"[a-z0-9]+", read_text(text).lower()))
    return re.sub(r"(?<=[a-z]) (?=\d)|(?<=\d) (?=[a-z])", "", flat)


_ROMAN = frozenset(["ii", "iii", "iv", "vi", "vii", "viii", "ix", "xi", "xii"])


def short_codes(text: str) -> frozenset[str]:
    """Short tokens that name one model of a line, too short to be taken for model codes:
    letters with digits of 2-3 characters ("EOS 70D" vs "6D", "Rebel T5" vs "T7i", "A7")
    and Roman numerals ("Genio II" vs "Legend VI", "Mark IV"); specs are not among them."""
    return frozenset(
        token
        for token in WORD.findall(clean_text(text).lower())
        if token in _ROMAN
        or (2 <= len(token) <= 3 and not token.isdigit() and any(c.isdigit() for c in token)
            and not is_spec(token))
    )  # fmt: skip


def unexplained_short_codes(codes: frozenset[str], other_text: str) -> int:
    """How many of `codes` the other offer's text lacks, with letters and digits glued across
    spaces ("70D" is in "EOS70D" and "EOS 70 D", not in "700D"; "II" is not in "III")."""
    glued = _glued(other_text)

    def written(code: str) -> bool:
        before = r"(?<!\d)" if code[0].isdigit() else r"(?<![a-z0-9])"
        return bool(re.search(rf"{before}{code}(?![a-z0-9])", glued))

    return sum(1 for code in codes if not written(code))


_HEAD_END = re.compile(r"\s[-|\u2013\u2014:\u00b7]\s|[|(\[,]|\s[-\u2013]\S")
HEAD_WORDS = 8  # at most, the words a product name takes before a shop adds its own text


def title_head(text: str) -> frozenset[str]:
    """The tokens of a title's first part, up to the first separator shops put between the
    product's name and their own text ("Nike Tiempo Genio II FG - Bianco/Nero ... Scarpe Uomo",
    "Kingston 32GB DT microDuo | Memorybits UK"); at least two words, at most `HEAD_WORDS`."""
    cleaned = clean_text(text)
    for match in _HEAD_END.finditer(cleaned):
        tokens = WORD.findall(title_tokens_text(cleaned[: match.start()]))
        if len(tokens) >= 2:
            return frozenset(tokens[:HEAD_WORDS])
    return frozenset(WORD.findall(title_tokens_text(cleaned))[:HEAD_WORDS])


# Words that make the rest of a title what the product fits, not what it is ("Battery for
# HERO4", "Etui pour iPhone 7", "Funda para Galaxy S8"), in the languages shops write in.
_PURPOSE = re.compile(
    r"\b(?:for|f\u00fcr|fuer|pour|para|per|voor|do|compatible|kompatibel|compatibile|fits)\b",
    re.IGNORECASE,
)


def names_a_purpose(text: str) -> bool:
    """True when `text` says what the product is for ("Dual Battery Charger for HERO3+"): an
    accessory, whose title names the product it fits."""
    return bool(_PURPOSE.search(clean_text(text)))


def title_tokens_text(text: str) -> str:
    """`text` lower-cased with quantities glued to their unit and stop words dropped, the form
    `title_tokens` splits."""
    glued = _NUMBER_UNIT.sub(lambda m: m.group(1) + m.group(2), read_text(text).lower())
    return " ".join(t for t in WORD.findall(glued) if t not in _STOPWORDS)


def title_tokens(text: str) -> frozenset[str]:
    """Lower-case word tokens with quantities glued to their unit ("36 V" -> "36v")."""
    return frozenset(title_tokens_text(text).split())


def number_tokens(text: str) -> frozenset[str]:
    """Tokens carrying a digit, specs included ("36v", "1855mm" of "18-55mm", "25318000" of
    "2531.80.00", "2.5mm"), numbers read (`read_numbers`) and separators other than a decimal
    point left out: the numbers two offers of one product must agree on. Prices are none of
    them: shops price one product differently, and write "€ 329.00" or "329 00 €"."""
    unpriced = read_text(text)
    for price in _price_patterns():
        unpriced = price.sub(" ", unpriced)
    glued = _NUMBER_UNIT.sub(lambda m: m.group(1) + m.group(2), unpriced.lower())
    return frozenset(
        _without_separators(m.group(0))
        for m in _CODE.finditer(glued)
        if any(c.isdigit() for c in m.group(0))
    )


def _without_separators(token: str) -> str:
    """A number token with the hyphens and points that are no decimal point left out: a code
    written with and without them is one ("T055.430.11.057.00", "T0554301105700"); "2.5mm"
    keeps its point."""
    decimals = {m.start(0) + len(m[1]) for m in DECIMAL.finditer(token)}
    return "".join(c for i, c in enumerate(token) if c not in "-." or i in decimals)


@dataclass(frozen=True)
class OfferFeatures:
    """The comparable facts of one offer (`key` is the offer id in the store).

    `brand` is the normalised brand key (`normalize_brand`); `colors` the basic colours of its
    specs and title (`colour_names`); `price` is in the offer's currency (compared only when
    both offers share `currency`).
    """

    key: int
    shop: str
    title: str = ""
    gtin: str | None = None
    brand: str | None = None
    models: frozenset[str] = frozenset()
    specs: Mapping[str, float] = field(default_factory=dict)
    colors: frozenset[str] = frozenset()
    tokens: frozenset[str] = frozenset()
    numbers: frozenset[str] = frozenset()
    price: float | None = None
    currency: str | None = None
    description: str = ""


def offer_features(
    key: int,
    shop: str,
    title: str = "",
    *,
    gtin: str | None = None,
    brand: str | None = None,
    model: str | None = None,
    specs: Mapping[str, Any] | None = None,
    sku: str | None = None,
    price: Any = None,
    currency: str | None = None,
    description: str | None = None,
    brands: BrandLexicon | None = None,
) -> OfferFeatures:
    """Reduce one offer's fields to `OfferFeatures`.

    Model codes are the structured `model` (schema.org MPN, or one read from the page) plus
    codes found in the title: a misread model then cannot hide the title's correct one. The
    shop's name and its own `sku` (when it is not the model) are never codes. A missing brand
    is read off the title with `brands` (the store's `BrandLexicon`). `specs` is the spec
    output contract of `cumpair.vision.specs`.
    """
    specs = dict(specs or {})
    brand = brand or specs.get("brand")
    model = model or specs.get("model")
    raw_title, title = clean_text(title), read_text(title)
    exclude = [shop]
    if sku and (not model or canonical_code(str(sku)) != canonical_code(str(model))):
        exclude.append(str(sku))
    # codes as the shop wrote them: a grouped number ("12,500") is a quantity, never a code
    codes = model_codes(raw_title, exclude=exclude)
    if model and len(canonical_code(str(model))) >= 3:
        codes |= {canonical_code(str(model))}
    numeric = {}
    for name in NUMERIC_SPECS:
        value = specs.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            numeric[name] = float(value)
    colors = {str(c).lower() for c in specs.get("colors") or () if isinstance(c, str)}
    colors = {COLOUR_NAMES.get(c.split()[-1], c) for c in colors if c} | colour_names(title)
    brand_key = normalize_brand(str(brand)) if brand else None
    if brand_key is None and brands is not None:
        brand_key = brands.find(title)
    return OfferFeatures(
        key=int(key),
        shop=shop,
        title=title,
        gtin=normalize_gtin(gtin) if gtin else normalize_gtin(specs.get("gtin")),
        brand=brand_key,
        models=codes,
        specs=numeric,
        colors=frozenset(colors),
        tokens=title_tokens(title),
        numbers=number_tokens(title),
        price=_price(price),
        currency=(currency or None) and str(currency).upper(),
        description=clean_text(description)[:2000],
    )


def _price(value: Any) -> float | None:
    try:
        number = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and number > 0 else None


def features_from_record(record: Any, brands: BrandLexicon | None = None) -> OfferFeatures:
    """Features of a store `OfferRecord` (anything with its attribute names)."""
    return offer_features(
        record.id,
        record.shop,
        record.title,
        gtin=record.gtin,
        brand=record.brand,
        model=record.model,
        specs=record.specs,
        sku=getattr(record, "sku", None),
        price=getattr(record, "price", None),
        currency=getattr(record, "currency", None),
        description=getattr(record, "description", None),
        brands=brands,
    )


# Fields of an offer given as a mapping (a JSON offer, a labelled pair's side, a feed row).
OFFER_FIELDS = ("title", "brand", "model", "gtin", "sku", "price", "currency", "description")


class OfferError(ValueError):
    """An offer given as a mapping that cannot be compared (not an object, nothing to compare)."""


def features_from_dict(
    offer: Any, key: int = 0, brands: BrandLexicon | None = None
) -> OfferFeatures:
    """`OfferFeatures` of an offer given as a mapping of the store's field names (`shop`,
    `OFFER_FIELDS`; a nested `specs` object is read too). Needs a title or a GTIN."""
    if not isinstance(offer, Mapping):
        raise OfferError(f"an offer must be a JSON object, got {type(offer).__name__}")
    fields = {name: offer.get(name) for name in OFFER_FIELDS}
    if not (str(fields["title"] or "").strip() or fields["gtin"]):
        raise OfferError("an offer needs a title or a gtin")
    specs = offer.get("specs")
    return offer_features(
        key,
        str(offer.get("shop") or ""),
        str(fields.pop("title") or ""),
        specs=specs if isinstance(specs, Mapping) else None,
        brands=brands,
        **{k: None if v is None else str(v) for k, v in fields.items()},
    )


def with_learned_brands(features: Sequence[OfferFeatures]) -> list[OfferFeatures]:
    """`features` with each missing brand read off its title by a `BrandLexicon` learned from
    these offers themselves (their brand fields and the words that open their titles)."""
    lexicon = BrandLexicon.learn([f.title for f in features], [f.brand for f in features])
    return [f if f.brand else replace(f, brand=lexicon.find(f.title)) for f in features]
