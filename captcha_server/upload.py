"""Turn what a client sent into validated image bytes, or the 2captcha error the docs give.

Runs in the server before anything is queued, so a client learns about an empty, oversize,
truncated or non-image upload from `in.php` itself, as with the real service. Images are
checked in memory; nothing touches the disk.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

from PIL import Image, UnidentifiedImageError

from captcha_server.config import Limits
from captcha_server.errors import CaptchaError

ALLOWED_EXTENSIONS = frozenset({"jpg", "jpeg", "gif", "png"})
"""What 2captcha accepts for multipart uploads (ERROR_WRONG_FILE_EXTENSION otherwise)."""
ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "GIF", "BMP", "WEBP"})
_DATA_URL = re.compile(r"^data:image/[a-z+.-]+;base64,", re.IGNORECASE)


def decode_base64(body: str | None) -> bytes:
    """Decode a `body` parameter; tolerates a data: URL prefix and line breaks."""
    if body is None or not body.strip():
        raise CaptchaError("ERROR_ZERO_CAPTCHA_FILESIZE", "body is empty")
    text = _DATA_URL.sub("", body.strip())
    text = "".join(text.split()).replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CaptchaError("ERROR_UPLOAD", "body is not valid base64") from exc


def check_extension(filename: str | None) -> None:
    """Multipart uploads must carry one of the extensions 2captcha accepts."""
    if not filename:
        return
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext not in ALLOWED_EXTENSIONS:
        raise CaptchaError("ERROR_WRONG_FILE_EXTENSION", f"extension {ext!r} not accepted")


def validate_image(data: bytes, limits: Limits) -> bytes:
    """Check size, type, dimensions and integrity; return the same bytes if all pass.

    Dimensions come from the header, before any pixel is decoded. Pillow's own guard against
    decompression bombs (`Image.MAX_IMAGE_PIXELS`, checked inside `Image.open`) can fire before
    ours; its error, and its warning raised as one here, mean too many pixels as well.
    """
    if len(data) < limits.min_bytes:
        raise CaptchaError("ERROR_ZERO_CAPTCHA_FILESIZE", f"{len(data)} bytes")
    if len(data) > limits.max_bytes:
        raise CaptchaError("ERROR_TOO_BIG_CAPTCHA_FILESIZE", f"{len(data)} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in ALLOWED_FORMATS:
                    raise CaptchaError("ERROR_IMAGE_TYPE_NOT_SUPPORTED", f"format {img.format}")
                width, height = img.size
                # Checked before decoding so a decompression bomb is never expanded.
                if width * height > limits.max_pixels or max(width, height) > limits.max_side:
                    raise CaptchaError("ERROR_TOO_BIG_CAPTCHA_FILESIZE", f"{width}x{height} pixels")
                img.load()
    except CaptchaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CaptchaError("ERROR_TOO_BIG_CAPTCHA_FILESIZE", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise CaptchaError("ERROR_IMAGE_TYPE_NOT_SUPPORTED", str(exc)) from exc
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt pixel data
        raise CaptchaError("ERROR_IMAGE_TYPE_NOT_SUPPORTED", f"corrupt image: {exc}") from exc
    return data
