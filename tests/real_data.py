"""The shared real data (`../shared/data/real`, see its README) as tests read it: one place for
its root and for the WDC titles several tests draw on. A test whose data is not there skips."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
#: Real e-commerce product photos (the photo tests' gallery and queries).
SHOP_PHOTOS = REAL_DATA / "photos" / "shop"


def wdc_titles(limit: int, clean: Callable[[str | None], str] | None = None) -> list[str]:
    """The first `limit` distinct non-empty offer titles of the shared WDC train pairs (read by
    `matcher_train.read_pairs`), each passed through `clean` first when given; skips the test
    when the pairs are not present."""
    from cumpair.search.matcher_train import read_pairs

    files = sorted((REAL_DATA / "matching" / "wdc").glob("*/train.txt"))
    if not files:
        pytest.skip("shared WDC pairs not present")
    seen: dict[str, None] = {}
    for path in files:
        for pair in read_pairs(path):
            for offer in (pair.left, pair.right):
                title = offer.get("title")
                seen.setdefault(clean(title) if clean else title or "", None)
    seen.pop("", None)
    return list(seen)[:limit]
