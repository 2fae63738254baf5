"""Per-field precision/recall of extracted specs against ground truth (spec output contract).

Shared by the tests (which assert F1 floors) and bench/bench_specs.py (which prints the
table), so both score exactly the same way. A wrong value counts as a false positive and a
false negative; numbers match within 0.5 % (or 0.6 absolute, for rounded unit conversions).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

FIELDS: tuple[str, ...] = (
    "dimensions_mm", "weight_g", "package_weight_g", "volume_ml", "storage_gb", "power_w",
    "voltage_v", "materials", "colors", "brand", "model", "sku", "gtin",
)  # fmt: skip
# Text fields whose truth may list several equally right spellings ("80D" / "EOS 80D").
_TEXT_FIELDS = frozenset({"brand", "model", "sku", "gtin"})


@dataclass(slots=True)
class FieldScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(slots=True)
class Scores:
    fields: dict[str, FieldScore] = field(default_factory=lambda: {f: FieldScore() for f in FIELDS})
    mistakes: list[tuple[str, str, Any, Any]] = field(default_factory=list)

    def add(self, case_id: str, predicted: Mapping[str, Any], truth: Mapping[str, Any]) -> None:
        for name in FIELDS:
            want, got = truth.get(name), predicted.get(name)
            want = None if want in (None, [], "") else want
            got = None if got in (None, [], "") else got
            score = self.fields[name]
            if want is None and got is None:
                continue
            if want is not None and got is not None and values_match(name, got, want):
                score.tp += 1
                continue
            if got is not None:
                score.fp += 1
            if want is not None:
                score.fn += 1
            self.mistakes.append((case_id, name, got, want))

    @property
    def false_positives(self) -> int:
        """Facts stated that the truth does not have, or has with another value."""
        return sum(s.fp for s in self.fields.values())

    def table(self) -> str:
        lines = [f"{'field':<16} {'prec':>6} {'recall':>6} {'f1':>6} {'tp':>4} {'fp':>4} {'fn':>4}"]
        for name, s in self.fields.items():
            if not s.tp + s.fp + s.fn:
                continue
            lines.append(
                f"{name:<16} {s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f} "
                f"{s.tp:4d} {s.fp:4d} {s.fn:4d}"
            )
        return "\n".join(lines)


def values_match(name: str, got: Any, want: Any) -> bool:
    if name in _TEXT_FIELDS and isinstance(want, list):
        return any(values_match(name, got, alternative) for alternative in want)
    if name == "dimensions_mm":
        return len(got) == len(want) and all(_close(g, w) for g, w in zip(got, want, strict=True))
    if name == "materials":
        return _materials(got) == _materials(want)
    if name == "colors":
        return {c.lower() for c in got} == {c.lower() for c in want}
    if isinstance(want, int | float) and not isinstance(want, bool):
        return isinstance(got, int | float) and _close(got, want)
    return str(got).casefold().strip() == str(want).casefold().strip()


def _close(got: float, want: float) -> bool:
    return math.isclose(float(got), float(want), rel_tol=0.005, abs_tol=0.6)


def _materials(items: Iterable[Mapping[str, Any]]) -> set[tuple[str, float | None]]:
    return {
        (str(m["name"]).lower(), None if m.get("percent") is None else float(m["percent"]))
        for m in items
    }


def simulate_photo(image: Image.Image, seed: int) -> Image.Image:
    """A rendered label as a phone would capture it: tilted up to 4 degrees, downscaled to
    75 %, slightly blurred, with sensor noise and JPEG quality 55. Deterministic per seed."""
    rng = np.random.default_rng(seed)
    image = image.rotate(
        float(rng.uniform(-4, 4)), Image.Resampling.BICUBIC, expand=True, fillcolor=(235, 235, 230)
    )
    image = image.resize((int(image.width * 0.75), int(image.height * 0.75)), Image.BILINEAR)
    image = image.filter(ImageFilter.GaussianBlur(0.6))
    noisy = np.asarray(image).astype(np.float32) + rng.normal(0, 10, (image.height, image.width, 1))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=55)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
