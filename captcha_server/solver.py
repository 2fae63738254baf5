"""Solve one task with the vision library's OCR chain; runs inside worker processes.

`warm_up()` loads the engines once per process (pool initializer / worker start) so no task pays
for a model load. Results cross process boundaries as plain dicts (JSON-safe for Redis).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from captcha_server.options import TaskOptions

UNSOLVABLE = "ERROR_CAPTCHA_UNSOLVABLE"


@dataclass(frozen=True, slots=True)
class Solution:
    """What a worker reports back: the answer or an error code, and how long the OCR took."""

    text: str = ""
    error: str | None = None
    confidence: float = 0.0
    engine: str = ""
    variant: str = ""
    words: list[dict[str, Any]] = field(default_factory=list)
    solve_s: float = 0.0
    specs: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Solution:
        return cls(**{k: data[k] for k in cls.__slots__ if k in data})


def warm_up(engines: tuple[str, ...] | None = None) -> list[str]:
    """Load `engines` (default: the library's chain) now; returns the names that loaded."""
    from cumpair.vision.engines import EngineUnavailableError, get_engine
    from cumpair.vision.ocr_types import DEFAULT_ENGINES

    loaded = []
    for name in engines or DEFAULT_ENGINES:
        try:
            get_engine(name)
            loaded.append(name)
        except EngineUnavailableError:
            continue  # the chain skips it too; /health reports what loaded
    return loaded


def solve(image: bytes, options: dict[str, Any], want_specs: bool = False) -> dict[str, Any]:
    """Read `image` under 2captcha `options` (a TaskOptions dict); returns a Solution dict.

    Never raises for bad images or unreadable text: those become ERROR_CAPTCHA_UNSOLVABLE, as a
    human worker would answer. Anything else is a bug and propagates.
    """
    from cumpair.vision import ocr
    from cumpair.vision.images import ImageError

    task = TaskOptions.from_dict(options)
    started = time.perf_counter()
    try:
        result = ocr.recognize(image, task.to_ocr_options())
    except (ImageError, ocr.OcrUnavailableError) as exc:
        return Solution(error=UNSOLVABLE, engine=type(exc).__name__).to_dict()
    elapsed = time.perf_counter() - started
    text = result.text.strip()
    if not task.check_answer(text):
        return Solution(
            error=UNSOLVABLE, engine=result.engine, variant=result.variant, solve_s=elapsed
        ).to_dict()
    specs = None
    if want_specs:
        from cumpair.vision.specs import extract_specs

        specs = extract_specs(text).to_dict()
    return Solution(
        text=text,
        confidence=float(result.confidence),
        engine=result.engine,
        variant=result.variant,
        words=[
            {"text": w.text, "confidence": round(float(w.confidence), 4), "box": w.box}
            for w in result.words
        ],
        solve_s=elapsed,
        specs=specs,
    ).to_dict()
