"""Image and text encoders for product search: offline EfficientNet-Lite0 + MiniLM, or CLIP.

A plain library (never imports Scrapy). Start from `load_encoders`; feed the crawl through
`BatchEmbedder`; compose product text with `product_text`. Heavy modules load lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cumpair.embed.base import (
    EmbedError,
    EncoderInfo,
    EncoderUnavailable,
    ImageEncoder,
    TextEncoder,
    info_of,
)
from cumpair.embed.registry import KINDS, EncoderSet, load_encoders
from cumpair.embed.text import product_text
from cumpair.lazy_names import lazy_getattr

if TYPE_CHECKING:
    from cumpair.embed.batch import BatchEmbedder, BatchEmbedderClosed, ItemVectors

# The crawl's embedder loads on first use (PEP 562): it reads photos (Pillow), which a text or
# GTIN query never does, and every query imports this package to select its encoders.
_LAZY = {
    "BatchEmbedder": "cumpair.embed.batch",
    "BatchEmbedderClosed": "cumpair.embed.batch",
    "ItemVectors": "cumpair.embed.batch",
}

__getattr__ = lazy_getattr(globals(), _LAZY)

__all__ = [
    "KINDS",
    "BatchEmbedder",
    "BatchEmbedderClosed",
    "EmbedError",
    "EncoderInfo",
    "EncoderSet",
    "EncoderUnavailable",
    "ImageEncoder",
    "ItemVectors",
    "TextEncoder",
    "info_of",
    "load_encoders",
    "product_text",
]
