"""Specifications of one product image: OCR through the fallback chain, then the text
patterns of `cumpair.vision.specs`, plus the photo's dominant colours.

With a `VisionCache`, an image whose bytes were read before costs a lookup: the cached OCR
answer and colours are reused and only the (cheap) text patterns run again. With `text_gate`,
an image in which `cumpair.vision.text_gate` sees no text line is not OCR'd at all (most
product photos): its answer is empty text, `ImageSpecs.gated`.

A label's headline (a short line at the top printed clearly larger than the body text) is
read as the brand when no labelled brand exists: shop labels print the brand that way.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np
from PIL import Image

from cumpair.vision.cache import VisionCache, content_digest, ocr_chain_version
from cumpair.vision.color import dominant_colors
from cumpair.vision.engines import EngineUnavailableError
from cumpair.vision.images import ImageSource, encoded_bytes, load_image
from cumpair.vision.ocr import recognize
from cumpair.vision.ocr_types import OcrOptions, OcrResult, OcrWord
from cumpair.vision.specs import Specs, extract_specs
from cumpair.vision.text_gate import DETECTOR_VERSION, GateOptions, has_text_lines

HEADLINE_RATIO = 1.3  # headline words are at least this much taller than the median word


@dataclass(frozen=True, slots=True)
class ImageSpecs:
    """What one image yielded: the specs and the OCR result they came from; `ocr_cached`
    when the OCR answer came from the cache (no engine ran); `gated` when the text gate saw
    no text line, so no engine ran either."""

    specs: Specs
    ocr: OcrResult
    ocr_cached: bool = False
    gated: bool = False


def extract_image_specs(
    image: ImageSource,
    *,
    ocr_options: OcrOptions | None = None,
    colors: int = 3,
) -> Specs:
    """OCR `image`, extract specs from its text and add its dominant colours.

    Raises `ImageError` for unusable images; an image without text yields colours only.
    """
    return read_image_specs(image, ocr_options=ocr_options, colors=colors).specs


def read_image_specs(
    image: ImageSource,
    *,
    ocr_options: OcrOptions | None = None,
    colors: int = 3,
    cache: VisionCache | None = None,
    text_gate: GateOptions | None = None,
) -> ImageSpecs:
    """Like `extract_image_specs`, also returning the OCR result (engine, confidence).

    With `cache`, OCR answers and colours are looked up by the image's bytes first and stored
    after they are computed (decoded pixels, which have no bytes, are never cached). With
    `text_gate`, only images showing a text line are OCR'd.
    """
    options = ocr_options or OcrOptions()
    data = encoded_bytes(image) if cache is not None else None
    if cache is None or data is None:
        rgb = load_image(image)  # decode once; OCR and colours share the pixels
        ocr = _recognize(rgb, options, text_gate)
        palette = dominant_colors(rgb, k=colors) if colors else []
        return _image_specs(ocr, palette, ocr_cached=False)
    digest, version = content_digest(data), ocr_chain_version(options)
    if text_gate is not None:  # gated and ungated answers differ for photos: never mixed
        version += f";gate={text_gate.min_aspect:g}x{text_gate.max_height:g}@{DETECTOR_VERSION}"
    ocr = cache.get_ocr(digest, version)
    palette = cache.get_colors(digest, colors) if colors else []
    if ocr is not None and palette is not None:
        return _image_specs(ocr, palette, ocr_cached=True)
    rgb = load_image(data)
    cached = ocr is not None
    if ocr is None:
        ocr = _recognize(rgb, options, text_gate)
        cache.put_ocr(digest, version, ocr)
    if palette is None:
        palette = dominant_colors(rgb, k=colors) if colors else []
        if colors:
            cache.put_colors(digest, colors, palette)
    return _image_specs(ocr, palette, ocr_cached=cached)


NO_TEXT = OcrResult(text="", confidence=0.0, engine="none", variant="no-text-line")
"""The answer for an image the text gate found no text line in."""


def _recognize(rgb: Image.Image, options: OcrOptions, text_gate: GateOptions | None) -> OcrResult:
    if text_gate is not None:
        try:
            if not has_text_lines(np.asarray(rgb), text_gate):
                return NO_TEXT
        except EngineUnavailableError:
            pass  # no detector here: read every image, as without the gate
    return recognize(rgb, options)


def _image_specs(ocr: OcrResult, palette: list, *, ocr_cached: bool) -> ImageSpecs:
    specs = extract_specs(ocr.text)
    if specs.brand is None:
        headline = headline_text(ocr)
        if headline:
            specs.brand = headline
            specs.note("brand", headline)
    specs.dominant_colors = palette
    return ImageSpecs(specs, ocr, ocr_cached, gated=ocr.variant == NO_TEXT.variant)


def headline_text(ocr: OcrResult) -> str | None:
    """The first text line when it is 1-3 words printed clearly larger than the rest."""
    if len(ocr.words) < 3:
        return None
    heights = [_height(word) for word in ocr.words]
    median = statistics.median(heights)
    lines = ocr.text.split("\n")
    skipped_words = 0
    # Specks at a label's frame come out as one-character lines ("I", "|"): skip them.
    while lines and sum(ch.isalnum() for ch in lines[0]) <= 1:
        skipped_words += len(lines.pop(0).split())
    if not lines:
        return None
    first_line = lines[0].strip()
    words = first_line.split()
    if not 1 <= len(words) <= 3 or ":" in first_line:
        return None
    first_words = ocr.words[skipped_words : skipped_words + len(words)]
    if " ".join(w.text for w in first_words) != first_line:
        return None  # engines that report whole lines: the first "word" is the line
    if min(_height(w) for w in first_words) < HEADLINE_RATIO * median:
        return None
    return first_line if any(ch.isalpha() for ch in first_line) else None


def _height(word: OcrWord) -> float:
    """Glyph height from the box's left and right edges, so a tilted line is not 'tall'."""
    if len(word.box) != 4:
        ys = [point[1] for point in word.box]
        return max(ys) - min(ys)
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = word.box
    return (math.hypot(x3 - x0, y3 - y0) + math.hypot(x2 - x1, y2 - y1)) / 2
