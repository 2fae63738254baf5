"""Word lists the spec patterns recognise: materials and colour names in product text.

Kept apart from the patterns so a shop with unusual wording needs a word added here, not a
regex changed. Canonical names are lower case; variants map onto them.
"""

from __future__ import annotations

import webcolors

# variant -> canonical material name
MATERIALS: dict[str, str] = {
    "cotton": "cotton", "organic cotton": "organic cotton", "polyester": "polyester",
    "recycled polyester": "recycled polyester", "wool": "wool", "merino wool": "merino wool",
    "merino": "merino wool", "nylon": "nylon", "polyamide": "polyamide", "elastane": "elastane",
    "spandex": "elastane", "lycra": "elastane", "linen": "linen", "silk": "silk",
    "leather": "leather", "genuine leather": "leather", "faux leather": "faux leather",
    "pu leather": "faux leather", "suede": "suede", "viscose": "viscose", "rayon": "viscose",
    "acrylic": "acrylic", "cashmere": "cashmere", "bamboo": "bamboo", "hemp": "hemp",
    "denim": "denim", "canvas": "canvas", "fleece": "fleece", "velvet": "velvet",
    "microfiber": "microfiber", "microfibre": "microfiber", "down": "down",
    "stainless steel": "stainless steel", "steel": "steel", "carbon steel": "carbon steel",
    "aluminium": "aluminium", "aluminum": "aluminium", "iron": "iron",
    "cast iron": "cast iron", "copper": "copper", "brass": "brass", "titanium": "titanium",
    "zinc": "zinc", "chrome": "chrome", "carbon fiber": "carbon fiber",
    "carbon fibre": "carbon fiber", "glass": "glass", "tempered glass": "tempered glass",
    "wood": "wood", "solid wood": "solid wood", "oak": "oak", "walnut": "walnut",
    "beech": "beech", "pine": "pine", "birch": "birch", "teak": "teak", "mdf": "mdf",
    "plywood": "plywood", "plastic": "plastic", "abs": "abs", "polycarbonate": "polycarbonate",
    "polypropylene": "polypropylene", "polyethylene": "polyethylene", "pvc": "pvc",
    "polyurethane": "polyurethane", "rubber": "rubber", "silicone": "silicone",
    "ceramic": "ceramic", "porcelain": "porcelain", "stoneware": "stoneware",
    "marble": "marble", "granite": "granite", "stone": "stone", "concrete": "concrete",
    "paper": "paper", "cardboard": "cardboard", "cork": "cork", "foam": "foam",
    "memory foam": "memory foam", "mesh": "mesh", "jute": "jute", "rattan": "rattan",
    "abs plastic": "abs plastic", "recycled paper": "recycled paper",
    "real leather": "leather", "full grain leather": "leather", "vegan leather": "faux leather",
    "imitation leather": "faux leather", "leatherette": "faux leather",
    # German and French names of the common ones, mapped onto the English canonical names
    "baumwolle": "cotton", "bio-baumwolle": "organic cotton", "bio baumwolle": "organic cotton",
    "leder": "leather", "echtleder": "leather", "glattleder": "leather", "wildleder": "suede",
    "kunstleder": "faux leather", "edelstahl": "stainless steel", "wolle": "wool",
    "merinowolle": "merino wool", "seide": "silk", "leinen": "linen", "kaschmir": "cashmere",
    "elasthan": "elastane", "polyamid": "polyamide", "viskose": "viscose", "holz": "wood",
    "massivholz": "solid wood", "glas": "glass", "kunststoff": "plastic", "stahl": "steel",
    "coton": "cotton", "coton bio": "organic cotton", "cuir": "leather",
    "cuir véritable": "leather", "similicuir": "faux leather", "daim": "suede",
    "acier inoxydable": "stainless steel", "laine": "wool", "soie": "silk", "bois": "wood",
    "verre": "glass", "plastique": "plastic", "élasthanne": "elastane",
}  # fmt: skip

# Materials safe to read from prose without a "Material:" label ("genuine leather strap",
# "Edelstahl", "coton bio"): words that in a product text almost always name what it is made
# of. Everyday words that often mean something else ("down", "stone", "iron", "glass", "lin")
# and colour names ("linen") are only read inside a labelled field.
PROSE_MATERIALS: frozenset[str] = frozenset(
    {
        "genuine leather", "real leather", "full grain leather", "leather", "suede",
        "faux leather", "vegan leather", "imitation leather", "leatherette", "pu leather",
        "stainless steel", "cotton", "organic cotton", "wool", "merino wool", "merino",
        "cashmere", "silk", "polyester", "recycled polyester", "denim", "carbon fiber",
        "carbon fibre", "solid wood", "tempered glass", "bamboo", "viscose", "aluminium",
        "aluminum",
        "elastane", "polyamide",
        "echtleder", "leder", "glattleder", "wildleder", "kunstleder", "edelstahl", "baumwolle",
        "bio-baumwolle", "bio baumwolle", "wolle", "merinowolle", "seide", "leinen", "kaschmir",
        "massivholz",
        "cuir", "cuir véritable", "similicuir", "daim", "acier inoxydable", "coton",
        "coton bio", "laine", "soie",
    }
)  # fmt: skip

# Friendly colour names beyond CSS3 that shops print, mapped to themselves; CSS3 names
# (webcolors) are accepted too. Output keeps the shop's wording, lower-cased, with `grey`
# spelled `gray` as CSS does, so "Space Grey" and "space gray" compare equal.
EXTRA_COLORS: frozenset[str] = frozenset(
    {
        "space gray", "rose gold", "midnight blue", "sky blue", "light blue", "dark blue",
        "dark green", "light green", "dark gray", "light gray", "charcoal", "graphite",
        "off white", "off-white", "cream", "burgundy", "mint", "mint green", "champagne",
        "bronze", "copper", "rose", "mustard", "army green", "forest green", "wine red",
        "royal blue", "matte black", "jet black", "multicolor", "multicolour", "transparent",
        "clear", "natural", "stainless", "taupe", "petrol", "ivory", "turquoise",
    }
)  # fmt: skip


def _css3_names() -> frozenset[str]:
    return frozenset(webcolors.names(webcolors.CSS3))


CSS3_COLORS = _css3_names()
# CSS3 has oddities that are common English words in product text; never treat them as colours.
_NOT_COLORS = frozenset({"tan", "linen", "snow", "moccasin", "bisque", "peru", "chocolate"})
COLOR_WORDS: frozenset[str] = (CSS3_COLORS - _NOT_COLORS) | EXTRA_COLORS | {"navy blue"}


def canonical_color(name: str) -> str | None:
    """Return the canonical spelling of a colour name, or None when it is not a colour."""
    key = " ".join(name.lower().replace("grey", "gray").replace("colour", "color").split())
    if key in COLOR_WORDS:
        return key
    compact = key.replace(" ", "")
    if compact in CSS3_COLORS and compact not in _NOT_COLORS:
        return key  # "dark green" is CSS `darkgreen`; keep the readable spelling
    return None
