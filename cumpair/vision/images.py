"""Safe image loading: every picture the vision code sees enters through `load_image`.

Crawled images are hostile input. This module checks byte size and pixel count before
decoding (decompression bombs), refuses formats that shell out to other programs (EPS runs
Ghostscript), normalises odd modes (CMYK, 16-bit, palette, alpha, animation) to 8-bit RGB and
turns every failure into a subclass of `ImageError` so callers catch one type.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_BYTES = 40 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000  # ~ 8000 x 5000; product photos are far smaller

# Raster formats that Pillow decodes itself; anything else (EPS, PSD, ...) is refused.
SUPPORTED_FORMATS = frozenset(
    {"PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM", "MPO", "ICO", "TGA", "AVIF"}
)

ImageSource = bytes | bytearray | memoryview | str | os.PathLike | Image.Image | np.ndarray


class ImageError(ValueError):
    """Base class: the input cannot be used as an image. The message says why."""


class NotAnImageError(ImageError):
    """The bytes are not an image in any format Pillow recognises."""


class UnsupportedImageError(ImageError):
    """An image, but in a format or mode this library will not decode."""


class TruncatedImageError(ImageError):
    """The header is fine but the pixel data ends early or is corrupt."""


class EmptyImageError(ImageError):
    """Zero bytes, or an image with zero width or height."""


class ImageTooLargeError(ImageError):
    """Over the byte or pixel limit; raised before the pixels are decoded."""


def load_image(
    source: ImageSource,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int | None = None,
) -> Image.Image:
    """Return `source` as a fully decoded 8-bit RGB image, or raise an `ImageError`.

    `source` may be encoded bytes, a file path, a PIL image or a numpy array (H x W or
    H x W x 3/4, uint8). Transparent pixels are composited onto white, which is what a
    shop page shows behind them; animated images yield their first frame.

    `min_side` lets a caller that only needs a small picture (an embedding model) decode
    JPEGs at 1/2, 1/4 or 1/8 scale - the smallest whose sides both stay at least `min_side`
    pixels - which libjpeg does several times faster than a full decode. Other formats, and
    the default None, decode at full resolution (OCR needs every pixel). Size limits apply to
    the full-resolution image either way.
    """
    if min_side is not None and min_side < 1:
        raise ValueError(f"min_side must be a positive number of pixels, got {min_side}")
    if isinstance(source, Image.Image):
        _check_pixels(source.size, max_pixels)
        return _to_rgb(source)
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    data = _read_bytes(source, max_bytes)
    return _decode(data, max_pixels, min_side)


def encoded_bytes(source: ImageSource, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes | None:
    """The encoded bytes of a file path or bytes source (what a content cache hashes); None
    for pixels already decoded (a PIL image, an array). Raises `ImageError` like `load_image`.
    """
    if isinstance(source, Image.Image | np.ndarray):
        return None
    return _read_bytes(source, max_bytes)


def _read_bytes(source: ImageSource, max_bytes: int) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise ImageTooLargeError(f"{path}: {size} bytes exceeds the {max_bytes}-byte limit")
            with path.open("rb") as handle:
                data = _read_limited(handle, max_bytes)
        except IsADirectoryError as exc:
            raise NotAnImageError(f"{path} is a directory") from exc
        except FileNotFoundError:
            raise
    else:
        raise TypeError(f"cannot load an image from {type(source).__name__}")
    if not data:
        raise EmptyImageError("image data is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"{len(data)} bytes exceeds the {max_bytes}-byte limit")
    return data


def _read_limited(handle: BinaryIO, max_bytes: int) -> bytes:
    # Read one byte past the limit so a file that grew after stat() is still refused.
    data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"file exceeds the {max_bytes}-byte limit")
    return data


def _decode(data: bytes, max_pixels: int, min_side: int | None = None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow warns between its own limit and twice it; our own check below decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise _unidentified(data) from exc
    except (OSError, SyntaxError, ValueError) as exc:  # corrupt headers surface as these
        raise TruncatedImageError(f"image header is corrupt: {exc}") from exc
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedImageError(f"image format {image.format} is not supported")
    _check_pixels(image.size, max_pixels)
    if min_side is not None and image.format == "JPEG":
        # Only JPEG can skip work at decode time (DCT scaling); draft picks the scale.
        image.draft(image.mode, (min_side, min_side))
    try:
        if getattr(image, "is_animated", False):
            image.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise TruncatedImageError(f"image data is truncated or corrupt: {exc}") from exc
    return _to_rgb(image)


_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def _unidentified(data: bytes) -> ImageError:
    """Pillow gave up: tell a broken image (known signature) from something else entirely."""
    kind = next((fmt for magic, fmt in _MAGIC.items() if data.startswith(magic)), None)
    if kind is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = "WEBP"
    if kind is None:
        return NotAnImageError("data is not a recognised image format")
    size = None
    if kind == "PNG" and len(data) >= 24:
        size = struct.unpack(">II", data[16:24])
    elif kind == "GIF" and len(data) >= 10:
        size = struct.unpack("<HH", data[6:10])
    if size is not None and 0 in size:
        return EmptyImageError(f"{kind} image has no pixels ({size[0]}x{size[1]})")
    return TruncatedImageError(f"{kind} signature but the header is corrupt or cut short")


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise EmptyImageError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height} pixels, over the {max_pixels} limit"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB without losing the visible picture."""
    if image.mode == "CMYK":
        image = _cmyk_to_rgb(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = _high_depth_to_l(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode != "RGB":
        try:
            image = image.convert("RGB")
        except (ValueError, OSError) as exc:
            raise UnsupportedImageError(f"cannot convert mode {image.mode} to RGB") from exc
    return image


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    # Pillow's JPEG decoder already undoes Adobe's inverted CMYK, so a plain convert is right.
    return image.convert("RGB")


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """Scale 16/32-bit or float greyscale to 0..255 by its own range (keeps contrast)."""
    array = np.asarray(image, dtype=np.float64)
    low, high = float(np.nanmin(array)), float(np.nanmax(array))
    if not np.isfinite(low) or not np.isfinite(high):
        raise UnsupportedImageError("image holds non-finite pixel values")
    scaled = np.zeros_like(array) if high == low else (array - low) * (255.0 / (high - low))
    return Image.fromarray(scaled.round().astype(np.uint8), mode="L")


def _from_array(array: np.ndarray, max_pixels: int) -> Image.Image:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise UnsupportedImageError(f"array shape {array.shape} is not an image")
    _check_pixels((array.shape[1], array.shape[0]), max_pixels)
    if array.dtype != np.uint8:
        raise UnsupportedImageError(f"array dtype {array.dtype} is not uint8")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return _to_rgb(Image.fromarray(np.ascontiguousarray(array)))
