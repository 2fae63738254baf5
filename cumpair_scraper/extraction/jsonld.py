"""JSON-LD read block by block, so one broken `<script type="application/ld+json">` hides nothing.

extruct decodes every block of a page in one pass and raises on the first bad one, which loses
the valid Product next to a broken breadcrumb. Here each block is decoded on its own (strict JSON,
then JSON with comments as extruct does); a block that still fails is reported by its position,
and a block followed by stray text keeps the value it starts with.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jstyleson
from lxml.etree import _Element

_COMMENT_LINE = re.compile(r"^\s*(//.*|<!--.*-->)", re.MULTILINE)
_WRAPPER = re.compile(r"^\s*(<!--|<!\[CDATA\[)|(-->|\]\]>)\s*$")
_BLOCKS = (
    "//script[contains(translate(@type, 'APLICTONJSD', 'aplictonjsd'), 'application/ld+json')]"
)


def jsonld_nodes(tree: _Element, problems: list[str]) -> list[dict[str, Any]]:
    """Every top-level JSON-LD object of the page, in page order, skipping undecodable blocks."""
    nodes: list[dict[str, Any]] = []
    for position, script in enumerate(tree.xpath(_BLOCKS), start=1):
        raw = _WRAPPER.sub("", str(script.xpath("string()"))).strip()
        if not raw:
            continue
        data = _decode(raw, position, problems)
        for node in data if isinstance(data, list) else [data]:
            if isinstance(node, dict):
                nodes.append(node)
    return nodes


def _decode(raw: str, position: int, problems: list[str]) -> Any:
    try:
        return json.loads(raw, strict=False)
    except ValueError as exc:
        error = exc
    try:
        return jstyleson.loads(_COMMENT_LINE.sub("", raw), strict=False)
    except ValueError:
        pass
    if isinstance(error, json.JSONDecodeError) and error.msg == "Extra data":
        value, _ = json.JSONDecoder(strict=False).raw_decode(raw)
        problems.append(f"json-ld: block {position} has text after its value ({error}); kept it")
        return value
    problems.append(f"json-ld: block {position} skipped: {type(error).__name__}: {error}")
    return None
