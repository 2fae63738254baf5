"""Preprocessing variants for OCR, chosen from measurements of the image at hand.

`plan_variants` inspects size, noise and skew once and returns lazily built variants in the
order most likely to help: the base image (upscaled when small, deskewed when tilted), then a
denoised Otsu binarisation, then adaptive thresholding with a morphological clean-up. Each
variant carries the affine transform from original to variant pixels so word boxes can be
mapped back. Nothing here knows about OCR engines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

MIN_TEXT_SIDE = 160  # images whose short side is below this are upscaled (captchas, crops)
MAX_UPSCALE = 4.0
DESKEW_MIN_DEGREES = 0.8
DESKEW_MAX_DEGREES = 12.0
PADDING = 16  # white margin added around every variant: Tesseract misreads glyphs at the edge
NOISY_SIGMA = 6.0  # Immerkaer noise estimate above which a median filter is worth its cost


@dataclass(frozen=True, slots=True)
class ImageStats:
    """What `plan_variants` measured; kept for logging and tests."""

    width: int
    height: int
    scale: float
    skew_degrees: float
    noise_sigma: float
    text_lines: int  # rough count of ink bands (0 = unknown); picks Tesseract's line mode


@dataclass(slots=True)
class Variant:
    """One preprocessed image. `image` is built on first access and cached."""

    name: str
    _build: Callable[[], np.ndarray]
    transform: np.ndarray  # 2x3 affine, original -> variant coordinates
    _image: np.ndarray | None = field(default=None, repr=False)

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            self._image = self._build()
        return self._image

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Map N x 2 points from variant pixels back to original pixels."""
        inverse = cv2.invertAffineTransform(self.transform)
        homogeneous = np.hstack([points, np.ones((len(points), 1))])
        return homogeneous @ inverse.T


def measure(image: Image.Image) -> ImageStats:
    """Measure what the variants depend on: scale needed, skew angle, noise level."""
    gray = np.asarray(image.convert("L"))
    height, width = gray.shape
    short = min(width, height)
    scale = min(MAX_UPSCALE, MIN_TEXT_SIDE / short) if short < MIN_TEXT_SIDE else 1.0
    skew = estimate_skew(gray)
    level = gray
    if abs(skew) >= DESKEW_MIN_DEGREES:  # count lines as the engines will see them
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), skew, 1.0)
        level = cv2.warpAffine(gray, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    return ImageStats(width, height, scale, skew, estimate_noise(gray), count_text_lines(level))


def plan_variants(image: Image.Image, stats: ImageStats | None = None) -> list[Variant]:
    """Return the variants worth trying for `image` (RGB), most promising first."""
    stats = stats or measure(image)
    rgb = np.asarray(image.convert("RGB"))
    transform = _base_transform(stats)
    base_parts = []
    if stats.scale > 1.0:
        base_parts.append(f"upscale{stats.scale:.1f}")
    if abs(stats.skew_degrees) >= DESKEW_MIN_DEGREES:
        base_parts.append(f"deskew{stats.skew_degrees:+.1f}")
    base_name = "+".join(base_parts) or "original"
    size = (
        round(stats.width * stats.scale) + 2 * PADDING,
        round(stats.height * stats.scale) + 2 * PADDING,
    )

    cache: dict[str, np.ndarray] = {}

    def base() -> np.ndarray:
        if "base" not in cache:
            cache["base"] = _warp(rgb, transform, size)
        return cache["base"]

    def gray() -> np.ndarray:
        return cv2.cvtColor(base(), cv2.COLOR_RGB2GRAY)

    noisy = stats.noise_sigma >= NOISY_SIGMA
    denoise_name = "median" if noisy else "gaussian"

    def otsu() -> np.ndarray:
        smoothed = cv2.medianBlur(gray(), 3) if noisy else cv2.GaussianBlur(gray(), (3, 3), 0)
        _, binary = cv2.threshold(smoothed, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        return _dark_text_on_light(binary)

    def adaptive() -> np.ndarray:
        smoothed = cv2.bilateralFilter(gray(), 7, 50, 50)
        block = max(15, (min(size) // 16) | 1)
        binary = cv2.adaptiveThreshold(
            smoothed, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, block, 10
        )
        binary = _dark_text_on_light(binary)
        # Closing the inverted image removes isolated specks and joins broken strokes.
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2, 2))
        inverted = cv2.morphologyEx(255 - binary, cv2.MORPH_OPEN, kernel)
        return 255 - cv2.morphologyEx(inverted, cv2.MORPH_CLOSE, kernel)

    prefix = "" if base_name == "original" else base_name + "+"
    return [
        Variant(base_name, base, transform),
        Variant(f"{prefix}{denoise_name}+otsu", otsu, transform),
        Variant(f"{prefix}bilateral+adaptive+open-close", adaptive, transform),
    ]


def count_text_lines(gray: np.ndarray) -> int:
    """Count horizontal ink bands: rows where dark pixels exceed 3 % of the width.

    Bands thinner than 4 % of the image (noise lines, dots) are ignored. Only used to tell a
    one-line image (captcha, banner) from a block of text, so rough is fine.
    """
    smoothed = cv2.medianBlur(gray, 3)  # sensor noise must not fill every row with "ink"
    _, ink = cv2.threshold(smoothed, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if ink.mean() > 0.5:
        ink = 1 - ink
    height = gray.shape[0]
    rows = ink.sum(axis=1) > 0.03 * gray.shape[1]  # frames and rules stay below 3 %
    min_band = max(3, int(0.04 * height))
    lines, run = 0, 0
    for has_ink in np.append(rows, False):
        if has_ink:
            run += 1
            continue
        if run > 0.6 * height:
            return 0  # one band over most of the image: not a line, so unknown
        if run >= min_band:
            lines += 1
        run = 0
    return lines


def estimate_noise(gray: np.ndarray) -> float:
    """Immerkaer's fast noise sigma estimate (1996): a Laplacian-difference kernel's mean."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    response = cv2.filter2D(gray.astype(np.float64), -1, kernel)
    height, width = gray.shape
    if height < 3 or width < 3:
        return 0.0
    total = np.abs(response[1:-1, 1:-1]).sum()
    return float(total * np.sqrt(np.pi / 2) / (6 * (width - 2) * (height - 2)))


def estimate_skew(gray: np.ndarray) -> float:
    """Return the rotation in degrees that levels the text, maximising row-profile peakiness.

    Text lines make sharp peaks in the horizontal projection only when they are level, so
    the best angle is the one whose projection varies most. Runs on a thumbnail: ~10 ms.
    """
    scale = min(1.0, 600 / max(gray.shape))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    _, binary = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if binary.mean() > 127:  # light text on dark: the foreground is the minority
        binary = 255 - binary
    ys, xs = np.nonzero(binary)
    if len(ys) < 20:
        return 0.0
    ys = ys.astype(np.float64)
    xs = xs.astype(np.float64)

    def score(angle: float) -> float:
        # Project foreground pixels onto the rotated y axis (same sign as cv2's rotation) and
        # measure how peaked the row histogram is; nothing is cropped, unlike rotating pixels.
        theta = np.deg2rad(angle)
        rows = ys * np.cos(theta) - xs * np.sin(theta)
        histogram = np.bincount(np.round(rows - rows.min()).astype(np.int64))
        return float(np.dot(histogram, histogram))

    coarse = np.arange(-DESKEW_MAX_DEGREES, DESKEW_MAX_DEGREES + 0.01, 1.0)
    best = max(coarse, key=score)
    fine = np.arange(best - 1.0, best + 1.01, 0.2)
    angle = float(max(fine, key=score))
    # A level page must lose clearly before we rotate it: short single lines (captchas) give
    # flat profiles where noise alone would pick a small angle.
    if abs(angle) < 0.05 or score(angle) < 1.15 * score(0.0):
        return 0.0
    return round(angle, 1)


def _base_transform(stats: ImageStats) -> np.ndarray:
    """Scale, then rotate about the centre, then shift by the padding."""
    scaled = np.array([[stats.scale, 0, PADDING], [0, stats.scale, PADDING]], dtype=np.float64)
    if abs(stats.skew_degrees) < DESKEW_MIN_DEGREES:
        return scaled
    centre = (stats.width * stats.scale / 2 + PADDING, stats.height * stats.scale / 2 + PADDING)
    rotation = cv2.getRotationMatrix2D(centre, stats.skew_degrees, 1.0)
    return rotation @ np.vstack([scaled, [0, 0, 1]])


def _warp(rgb: np.ndarray, transform: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.warpAffine(
        rgb, transform, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )


def _dark_text_on_light(binary: np.ndarray) -> np.ndarray:
    """Engines expect dark text on a light page; invert when the page came out dark."""
    return 255 - binary if binary.mean() < 127 else binary
