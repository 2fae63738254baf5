"""Realistic photo queries made from shop photos: what a shopper's phone picture does to them.

Each transformation (crop, rotation, blur, JPEG, lighting, new background) is deterministic for
a seed, so the photo-recall evaluation is reproducible; `photo_query` chains two or three.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

from PIL import Image, ImageEnhance, ImageFilter


def crop(image: Image.Image, rng: random.Random) -> Image.Image:
    share = rng.uniform(0.7, 0.9)
    w, h = image.size
    cw, ch = int(w * share), int(h * share)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return image.crop((x, y, x + cw, y + ch))


def rotate(image: Image.Image, rng: random.Random) -> Image.Image:
    angle = rng.uniform(-15, 15)
    fill = image.getpixel((0, 0))
    return image.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=fill)


def blur(image: Image.Image, rng: random.Random) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.5)))


def jpeg(image: Image.Image, rng: random.Random) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=rng.randint(20, 50))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def lighting(image: Image.Image, rng: random.Random) -> Image.Image:
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.6, 1.4))
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.7, 1.3))
    return ImageEnhance.Color(image).enhance(rng.uniform(0.6, 1.4))


def background(image: Image.Image, rng: random.Random, subject: Image.Image | None = None):
    """Put the product (RGBA `subject`, else the photo itself shrunk) on a new backdrop."""
    size = image.size
    top = tuple(rng.randint(60, 255) for _ in range(3))
    bottom = tuple(rng.randint(60, 255) for _ in range(3))
    backdrop = Image.linear_gradient("L").resize(size)
    canvas = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), backdrop)
    art = subject if subject is not None else image.convert("RGBA")
    scale = rng.uniform(0.55, 0.85) * min(size) / max(art.size)
    art = art.resize((max(1, int(art.width * scale)), max(1, int(art.height * scale))))
    x = rng.randint(0, size[0] - art.width)
    y = rng.randint(0, size[1] - art.height)
    canvas.paste(art, (x, y), art)
    return canvas


TRANSFORMS: dict[str, Callable[[Image.Image, random.Random], Image.Image]] = {
    "crop": crop,
    "rotation": rotate,
    "blur": blur,
    "jpeg": jpeg,
    "lighting": lighting,
}


def photo_query(
    photo: Image.Image, seed: int, subject: Image.Image | None = None
) -> tuple[Image.Image, list[str]]:
    """A shop photo as a shopper would photograph the product: 2-3 transformations, in order.

    With `subject` (the product cut out, RGBA), one query in three gets a new background first.
    Returns the image and the names of the transformations applied.
    """
    rng = random.Random(seed)
    image, applied = photo.convert("RGB"), []
    if subject is not None and rng.random() < 1 / 3:
        image, applied = background(image, rng, subject), ["background"]
    for name in rng.sample(sorted(TRANSFORMS), rng.randint(2, 3)):
        image = TRANSFORMS[name](image, rng)
        applied.append(name)
    return image, applied
