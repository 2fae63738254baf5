"""Typed records that cross the OCR boundary: what a caller asks for and what it gets back.

Kept free of any engine import so the OCR server and the pipelines can build options and read
results without loading Tesseract, ONNX Runtime or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

Box = tuple[tuple[float, float], ...]
"""Corner points of a word in the original image's pixel coordinates (clockwise from top-left)."""

DEFAULT_ENGINES: tuple[str, ...] = ("tesseract", "rapidocr", "easyocr")
"""Chain order measured by bench/bench_ocr.py: Tesseract is ~4x faster than RapidOCR and
nearly as accurate on printed labels, so it goes first and the slower engines only see the
images it was unsure about."""

CHAIN_REVISION = 1
"""Bump when the chain's code (preprocessing variants, answer selection, line joining) changes
what it answers for the same image and options: cached OCR answers (`cumpair.vision.cache`)
of older revisions are then never read."""


class CharacterSet(IntEnum):
    """What characters an answer may hold; the values are 2captcha's `numeric` parameter."""

    ANY = 0
    DIGITS = 1
    LETTERS = 2
    DIGITS_OR_LETTERS = 3  # either only digits or only letters
    DIGITS_AND_LETTERS = 4  # must contain both


@dataclass(frozen=True, slots=True)
class OcrOptions:
    """How to read one image; every field has a neutral default.

    `whitelist` restricts the characters engines may return (Tesseract enforces it while
    decoding; other engines' text is filtered). `case_sensitive=False` (2captcha `regsense=0`)
    lower-cases the answer. `phrase=False` removes spaces between words. `calc=True` treats
    the text as an arithmetic expression and answers its value. An answer that breaks
    `charset`, `min_len` or `max_len` is treated as a failed read and falls through the chain.
    """

    charset: CharacterSet = CharacterSet.ANY
    whitelist: str | None = None
    min_len: int = 0
    max_len: int = 0  # 0 = unlimited
    case_sensitive: bool = True
    phrase: bool = True
    calc: bool = False
    language: str = "eng"
    engines: tuple[str, ...] | None = None
    min_confidence: float = 0.80
    max_variants: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be within 0..1, got {self.min_confidence}")
        if self.min_len < 0 or self.max_len < 0:
            raise ValueError("min_len and max_len must not be negative")
        if self.max_len and self.min_len > self.max_len:
            raise ValueError(f"min_len {self.min_len} exceeds max_len {self.max_len}")
        if self.max_variants < 1:
            raise ValueError("max_variants must be at least 1")
        if self.engines is not None and not self.engines:
            raise ValueError("engines must name at least one engine")
        if isinstance(self.charset, int) and not isinstance(self.charset, CharacterSet):
            object.__setattr__(self, "charset", CharacterSet(self.charset))

    @property
    def engine_order(self) -> tuple[str, ...]:
        return self.engines if self.engines is not None else DEFAULT_ENGINES


@dataclass(frozen=True, slots=True)
class OcrWord:
    """One recognised word (or text line, for engines that only report lines)."""

    text: str
    confidence: float
    box: Box


@dataclass(frozen=True, slots=True)
class OcrResult:
    """The chain's answer, naming the engine and preprocessing variant that produced it."""

    text: str
    confidence: float
    engine: str
    variant: str
    words: tuple[OcrWord, ...] = field(default_factory=tuple)
    attempts: tuple[tuple[str, str, float], ...] = field(default_factory=tuple)
    """(engine, variant, confidence) of every read tried, in order, for diagnosis."""

    def to_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "confidence": round(self.confidence, 4),
            "engine": self.engine,
            "variant": self.variant,
            "words": [
                {"text": w.text, "confidence": round(w.confidence, 4), "box": w.box}
                for w in self.words
            ],
        }
