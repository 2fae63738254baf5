"""Captchas of the demo shops' challenge page: the answer and the image both follow from a token.

The shops are ours and exist to exercise our own OCR, so the images are clearly readable
(dark glyphs, moderate noise) and the alphabet leaves out look-alikes (0/O, 1/I, 2/Z, 5/S, ...).
Nothing is stored: the server checks an answer by recomputing it from the token.
"""

from __future__ import annotations

import functools
import hashlib
import io
import random
import re
import secrets

from PIL import Image, ImageDraw, ImageFont

from cumpair.demo.images import FONT_DIR

ALPHABET = "ACDEFHJKLMNPRTUVWXY3479"
CAPTCHA_SIZE = (300, 90)
_TOKEN = re.compile(r"^[0-9a-f]{16}$")


class CaptchaTokenError(ValueError):
    """A token the server never issues (wrong shape): no captcha exists for it."""


def new_token() -> str:
    """A fresh random token (16 hex digits)."""
    return secrets.token_hex(8)


def _check(token: str) -> None:
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise CaptchaTokenError(f"not a captcha token: {token!r}")


def captcha_answer(token: str) -> str:
    """The 5-6 characters shown in the captcha of `token` (upper case)."""
    _check(token)
    digest = hashlib.sha256(f"cumpair-demo-captcha:{token}".encode()).digest()
    length = 5 + digest[0] % 2
    return "".join(ALPHABET[b % len(ALPHABET)] for b in digest[1 : 1 + length])


def answer_matches(token: str, answer: str) -> bool:
    """Whether `answer` solves the captcha of `token` (case and surrounding space ignored)."""
    try:
        expected = captcha_answer(token)
    except CaptchaTokenError:
        return False
    return secrets.compare_digest(answer.strip().upper().encode(), expected.encode())


def render_captcha(token: str) -> Image.Image:
    """The captcha image of `token`: its answer in bold glyphs over light noise lines and dots."""
    text = captcha_answer(token)
    rng = random.Random(token)
    width, height = CAPTCHA_SIZE
    image = Image.new("RGB", CAPTCHA_SIZE, (250, 250, 246))
    draw = ImageDraw.Draw(image)
    for _ in range(160):
        x, y = rng.randrange(width), rng.randrange(height)
        draw.point((x, y), fill=(rng.randint(150, 200),) * 3)
    for _ in range(4):
        points = [(rng.randrange(width), rng.randrange(height)) for _ in range(2)]
        draw.line(points, fill=(rng.randint(170, 210),) * 3, width=1)
    font = ImageFont.truetype(str(FONT_DIR / "DejaVuSans-Bold.ttf"), 46)
    # One text run (not glyph by glyph): OCR detectors then see one word, as on a real captcha.
    ink = tuple(rng.randint(10, 60) for _ in range(3))
    box = draw.textbbox((0, 0), text, font=font)
    x = (width - (box[2] - box[0])) // 2 + rng.randint(-8, 8)
    y = (height - (box[3] - box[1])) // 2 - box[1] + rng.randint(-3, 3)
    draw.text((x, y), text, font=font, fill=ink)
    image = image.rotate(
        rng.uniform(-3, 3), resample=Image.Resampling.BICUBIC, fillcolor=(250, 250, 246)
    )
    return image


@functools.lru_cache(maxsize=512)
def captcha_png(token: str) -> bytes:
    """PNG bytes of the captcha of `token` (raises CaptchaTokenError for a malformed token)."""
    buffer = io.BytesIO()
    render_captcha(token).save(buffer, "PNG")
    return buffer.getvalue()
