"""Image and text encoders for product search: offline EfficientNet-Lite0 + MiniLM, or CLIP.

A plain library (never imports Scrapy). Start from `load_encoders`; feed the crawl through
`BatchEmbedder`; compose product text with `product_text`. Heavy modules load lazily.
"""

from __future__ import annotations

from cumpair.embed.base import (
    EmbedError,
    EncoderInfo,
    EncoderUnavailable,
    ImageEncoder,
    TextEncoder,
    info_of,
)
from cumpair.embed.batch import BatchEmbedder, BatchEmbedderClosed, ItemVectors
from cumpair.embed.registry import KINDS, EncoderSet, load_encoders
from cumpair.embed.text import product_text

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
