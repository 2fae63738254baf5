"""The OCR fallback chain shared by the item pipelines and the captcha server.

`recognize` loads the image safely, plans preprocessing variants once, then asks each engine
in `OcrOptions.engine_order` to read a few variants. An answer that meets the options'
constraints with confidence >= `min_confidence` is returned at once; otherwise the best valid
answer seen is returned after every attempt, so callers always learn which engine/variant won.
Importing this module loads no engine.
"""

from __future__ import annotations

import ast
import logging
import operator
import re
from fractions import Fraction

import numpy as np

from cumpair.vision.engines import (
    LANGUAGE_ALIASES,
    EngineUnavailableError,
    RawWord,
    get_engine,
)
from cumpair.vision.images import ImageSource, load_image
from cumpair.vision.ocr_types import CharacterSet, OcrOptions, OcrResult, OcrWord
from cumpair.vision.preprocess import Variant, measure, plan_variants

__all__ = ["CharacterSet", "OcrOptions", "OcrResult", "OcrWord", "recognize"]

logger = logging.getLogger(__name__)

DIGITS = "0123456789"
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
CALC_CHARACTERS = DIGITS + "+-*/:x\u00d7\u00f7=?() "  # with multiplication and division signs
# Glyphs that engines confuse with digits; only applied when the answer must be digits.
_DIGIT_LOOKALIKES = str.maketrans({"O": "0", "o": "0", "D": "0", "l": "1", "I": "1", "i": "1",
                                   "|": "1", "Z": "2", "z": "2", "S": "5", "s": "5", "B": "8",
                                   "g": "9", "q": "9"})  # fmt: skip


class OcrUnavailableError(RuntimeError):
    """No engine in the requested order could be loaded."""


def recognize(image: ImageSource, options: OcrOptions | None = None) -> OcrResult:
    """Read the text in `image` (bytes, path, PIL image or array) through the fallback chain.

    Raises `cumpair.vision.images.ImageError` for unusable input, `ValueError` for an unknown
    engine or language, and `OcrUnavailableError` when no requested engine can load. An image
    without readable text gives an `OcrResult` with empty text and confidence 0.
    """
    options = options or OcrOptions()
    if options.language.lower() not in LANGUAGE_ALIASES:
        raise ValueError(f"language {options.language!r} is not installed (only English)")
    rgb = load_image(image)
    stats = measure(rgb)
    variants = plan_variants(rgb, stats)
    whitelist = _engine_whitelist(options)

    attempts: list[tuple[str, str, float]] = []
    best: OcrResult | None = None
    unavailable: list[str] = []
    for engine_name in options.engine_order:
        try:
            engine = get_engine(engine_name)
        except EngineUnavailableError as exc:
            logger.warning("OCR engine %s skipped: %s", engine_name, exc)
            unavailable.append(engine_name)
            continue
        for variant, mode in _schedule(variants, engine.modes(stats.text_lines), options):
            raw = engine.read(variant.image, mode=mode, whitelist=whitelist)
            label = f"{variant.name}/{mode}" if mode else variant.name
            result = _answer(raw, variant, engine_name, label, options)
            valid = result is not None
            confidence = result.confidence if result else 0.0
            attempts.append((engine_name, label, confidence))
            if result is not None and (best is None or result.confidence > best.confidence):
                best = result
            if valid and confidence >= options.min_confidence:
                return _with_attempts(result, attempts)
    if len(unavailable) == len(options.engine_order):
        raise OcrUnavailableError(f"no OCR engine could load: {', '.join(unavailable)}")
    if best is None:
        engine_name, label, _ = attempts[-1]
        return OcrResult("", 0.0, engine_name, label, (), tuple(attempts))
    return _with_attempts(best, attempts)


def _schedule(
    variants: list[Variant], modes: tuple[str, ...], options: OcrOptions
) -> list[tuple[Variant, str]]:
    """Order (variant, mode) attempts: every variant in the primary mode, the base image in
    the secondary modes after the first binarisation, capped at `max_variants`."""
    plan = [(variant, modes[0]) for variant in variants]
    for offset, mode in enumerate(modes[1:]):
        plan.insert(min(len(plan), 2 + offset), (variants[0], mode))
    return plan[: options.max_variants]


def _engine_whitelist(options: OcrOptions) -> str | None:
    if options.whitelist:
        return options.whitelist
    if options.calc:
        return CALC_CHARACTERS
    if options.charset is CharacterSet.DIGITS:
        return DIGITS
    if options.charset is CharacterSet.LETTERS:
        return LETTERS
    return None


def _answer(
    raw: list[RawWord], variant: Variant, engine: str, label: str, options: OcrOptions
) -> OcrResult | None:
    """Turn an engine's words into the caller's answer, or None when it breaks the options."""
    # Lines are grouped in variant pixels, where deskewing has levelled them.
    level = [w for w in (_filter_word(w, options) for w in raw) if w.text]
    if not level:
        return None
    text = _join_lines(level)
    words = [_to_original(word, variant) for word in level]
    if options.calc:
        value = evaluate_expression(text)
        if value is None:
            return None
        text = value
    if not options.phrase:
        text = re.sub(r"\s+", "", text)
    if not options.case_sensitive:
        text = text.lower()
    if not _meets_constraints(text, options):
        return None
    total = sum(len(w.text) for w in words)
    confidence = sum(w.confidence * len(w.text) for w in words) / total
    return OcrResult(text, confidence, engine, label, tuple(words))


def _to_original(word: RawWord, variant: Variant) -> OcrWord:
    points = variant.to_original(np.asarray(word.box, dtype=np.float64).reshape(-1, 2))
    box = tuple((round(float(x), 1), round(float(y), 1)) for x, y in points)
    return OcrWord(word.text, min(1.0, max(0.0, word.confidence)), box)


def _filter_word(word: RawWord, options: OcrOptions) -> RawWord:
    text = word.text
    allowed = _engine_whitelist(options)
    if options.charset is CharacterSet.DIGITS and not options.whitelist:
        text = text.translate(_DIGIT_LOOKALIKES)
    if allowed is not None:
        text = "".join(ch for ch in text if ch in allowed or ch == " ")
    return RawWord(text.strip(), word.confidence, word.box)


def _join_lines(words: list[RawWord]) -> str:
    """Group words into lines by vertical overlap and join them in reading order."""
    entries = []
    for word in words:
        box = np.asarray(word.box, dtype=np.float64).reshape(-1, 2)
        entries.append((box[:, 1].min(), box[:, 1].max(), box[:, 0].min(), word.text))
    entries.sort(key=lambda e: ((e[0] + e[1]) / 2, e[2]))
    lines: list[list[tuple[float, float, float, str]]] = []
    for entry in entries:
        top, bottom = entry[0], entry[1]
        if lines:
            line_top = min(e[0] for e in lines[-1])
            line_bottom = max(e[1] for e in lines[-1])
            overlap = min(bottom, line_bottom) - max(top, line_top)
            if overlap > 0.5 * min(bottom - top, line_bottom - line_top):
                lines[-1].append(entry)
                continue
        lines.append([entry])
    return "\n".join(" ".join(e[3] for e in sorted(line, key=lambda e: e[2])) for line in lines)


def _meets_constraints(text: str, options: OcrOptions) -> bool:
    compact = re.sub(r"\s+", "", text)
    if not compact or len(compact) < options.min_len:
        return False
    if options.max_len and len(compact) > options.max_len:
        return False
    if options.calc:
        return True
    has_digit = any(ch.isdigit() for ch in compact)
    has_letter = any(ch.isalpha() for ch in compact)
    match options.charset:
        case CharacterSet.DIGITS:
            return compact.isdigit()
        case CharacterSet.LETTERS:
            return compact.isalpha()
        case CharacterSet.DIGITS_OR_LETTERS:
            return compact.isdigit() or compact.isalpha()
        case CharacterSet.DIGITS_AND_LETTERS:
            return has_digit and has_letter
    return True


_CALC_OPERATORS = str.maketrans({"\u00d7": "*", "x": "*", "X": "*", "\u00f7": "/", ":": "/"})
_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate_expression(text: str) -> str | None:
    """Evaluate a printed arithmetic expression such as `12 + 7 =` or `3 x 4 = ?`.

    Only integers, + - * / and parentheses are accepted; anything else gives None. Exact
    rational arithmetic avoids `0.30000000000000004`-style answers.
    """
    expression = text.translate(_CALC_OPERATORS)
    expression = re.sub(r"[=?\s]+$", "", expression.split("=")[0]).strip()
    if not expression or len(expression) > 64 or not re.fullmatch(r"[\d+\-*/() ]+", expression):
        return None
    try:
        tree = ast.parse(expression, mode="eval")
        value = _evaluate(tree.body)
    except (SyntaxError, ZeroDivisionError, ValueError, RecursionError):
        return None
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6g}"


def _evaluate(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    raise ValueError("not an arithmetic expression")


def _with_attempts(result: OcrResult, attempts: list[tuple[str, str, float]]) -> OcrResult:
    return OcrResult(
        result.text,
        result.confidence,
        result.engine,
        result.variant,
        result.words,
        tuple(attempts),
    )
