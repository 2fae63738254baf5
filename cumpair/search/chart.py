"""The product page's price-history chart: one SVG line per shop, drawn on the server.

Server-rendered so the page needs no chart library and no network; the SVG scales to the
page's width (viewBox) and each line carries its shop (`data-shop`) and points with tooltips.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from markupsafe import Markup, escape

from cumpair.search.formatting import money_text, when_text
from cumpair.search.views import PriceSeries

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 90, 12, 12, 30  # margins for the axis labels
# Distinguishable on white and for the common colour blindnesses (Okabe-Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def _scale(value: float, low: float, high: float, start: float, end: float) -> float:
    if high == low:
        return (start + end) / 2
    return start + (value - low) / (high - low) * (end - start)


def price_chart_svg(series: Sequence[PriceSeries], cheapest_offer_id: int | None = None) -> Markup:
    """An SVG of every series with a price (one `polyline.series` each, the cheapest offer's
    line marked `cheapest`), a price axis with three ticks and the first and last dates."""
    drawn = [s for s in series if s.points]
    if not drawn:
        return Markup('<p class="no-chart">No price history yet.</p>')
    times = [t.timestamp() for s in drawn for t, _ in s.points]
    prices = [float(p) for s in drawn for _, p in s.points]
    t0, t1 = min(times), max(times)
    low, high = min(prices), max(prices)
    pad = (high - low) * 0.1 or max(high * 0.05, 1.0)
    low, high = max(low - pad, 0.0), high + pad
    currency = drawn[0].currency

    def x(t: datetime) -> float:
        return round(_scale(t.timestamp(), t0, t1, LEFT, WIDTH - RIGHT), 1)

    def y(p: Decimal | float) -> float:
        return round(_scale(float(p), low, high, HEIGHT - BOTTOM, TOP), 1)

    parts = [
        f'<svg class="price-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        ' aria-label="Price history per shop" xmlns="http://www.w3.org/2000/svg">'
    ]
    for n in range(3):
        value = low + (high - low) * n / 2
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value)}" y2="{y(value)}"'
            ' stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y(value) + 4}" text-anchor="end" font-size="11">'
            f"{escape(money_text(Decimal(f'{value:.2f}'), currency))}</text>"
        )
    moments = [t for s in drawn for t, _ in s.points]
    first, last = min(moments), max(moments)
    # data-time: the page's script rewrites these in the browser's time zone, as <time> texts.
    parts.append(
        f'<text x="{LEFT}" y="{HEIGHT - 8}" font-size="11" data-time="{first.isoformat()}">'
        f"{escape(when_text(first))}</text>"
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" font-size="11" text-anchor="end"'
        f' data-time="{last.isoformat()}">{escape(when_text(last))}</text>'
    )
    for n, s in enumerate(drawn):
        colour = PALETTE[n % len(PALETTE)]
        cheapest = s.offer_id == cheapest_offer_id
        points = " ".join(f"{x(t)},{y(p)}" for t, p in s.points)
        classes = "series cheapest" if cheapest else "series"
        parts.append(
            f'<g class="shop-line" data-shop="{escape(s.shop)}">'
            f'<polyline class="{classes}" data-shop="{escape(s.shop)}" fill="none"'
            f' stroke="{colour}" stroke-width="{4 if cheapest else 2}" points="{points}"/>'
        )
        for t, p in s.points:
            tip = f"{s.shop}: {money_text(p, s.currency)} on {when_text(t)}"
            parts.append(
                f'<circle cx="{x(t)}" cy="{y(p)}" r="3" fill="{colour}">'
                f"<title>{escape(tip)}</title></circle>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))


def chart_legend(series: Sequence[PriceSeries]) -> list[tuple[str, str]]:
    """(shop, colour) of each drawn line, in the chart's order, for the legend under it."""
    drawn = [s for s in series if s.points]
    return [(s.shop, PALETTE[n % len(PALETTE)]) for n, s in enumerate(drawn)]
