"""Realistic photo queries made from shop photos: what a shopper's phone picture does to them.

Each transformation (crop, rotation, blur, JPEG, lighting, new background) is deterministic for
a seed, so the photo-recall evaluation is reproducible; `photo_query` chains two or three.
`REAL_TRANSFORMS` are what a phone does to a real photograph (perspective, another real photo
covering part of it, the product small on a real textured floor, JPEG 40, a white-balance cast
with a shadow, a close-up), each applied alone; they take a `Scene` of real photos to use.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
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


@dataclass(frozen=True)
class Scene:
    """Real photos a real-photo transformation draws on: `textures` (floors, walls: what a
    product lies on) and `occluders` (other real photos that may cover part of the product)."""

    textures: Sequence[Image.Image]
    occluders: Sequence[Image.Image]


def _texture(scene: Scene, rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A random crop of one of the scene's textures, resized to `size`."""
    texture = rng.choice(list(scene.textures)).convert("RGB")
    share = rng.uniform(0.5, 1.0)
    side = max(8, int(min(texture.size) * share))
    x, y = rng.randint(0, texture.width - side), rng.randint(0, texture.height - side)
    return texture.crop((x, y, x + side, y + side)).resize(size)


def perspective(image: Image.Image, rng: random.Random, scene: Scene) -> Image.Image:
    """The photo seen at an angle: each corner pulled in by 5-20%, a real texture around it."""
    width, height = image.size
    src = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    pull = [(rng.uniform(0.05, 0.2) * width, rng.uniform(0.05, 0.2) * height) for _ in range(4)]
    signs = ((1, 1), (-1, 1), (-1, -1), (1, -1))
    dst = src + np.float32(
        [[sx * px, sy * py] for (px, py), (sx, sy) in zip(pull, signs, strict=True)]
    )
    matrix = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(np.asarray(image.convert("RGB")), matrix, (width, height))
    inside = cv2.warpPerspective(np.full((height, width), 255, np.uint8), matrix, (width, height))
    around = np.asarray(_texture(scene, rng, (width, height)))
    return Image.fromarray(np.where(inside[..., None] > 127, warped, around))


def occlusion(image: Image.Image, rng: random.Random, scene: Scene) -> Image.Image:
    """Another real photo covering 25-40% of the frame from one corner."""
    out = image.convert("RGB")
    width, height = out.size
    share = math.sqrt(rng.uniform(0.25, 0.4))
    patch = rng.choice(list(scene.occluders)).convert("RGB")
    patch = patch.resize((max(1, int(width * share)), max(1, int(height * share))))
    x = rng.choice((0, width - patch.width))
    y = rng.choice((0, height - patch.height))
    out.paste(patch, (x, y))
    return out


def small_on_texture(image: Image.Image, rng: random.Random, scene: Scene) -> Image.Image:
    """The product small (its long side 35-60% of the shot's short side) on a real texture."""
    canvas = _texture(scene, rng, (640, 480))
    scale = rng.uniform(0.35, 0.6) * 480 / max(image.size)
    small = image.convert("RGB").resize(
        (max(8, int(image.width * scale)), max(8, int(image.height * scale)))
    )
    x = rng.randint(0, canvas.width - small.width)
    y = rng.randint(0, canvas.height - small.height)
    canvas.paste(small, (x, y))
    return canvas


def jpeg40(image: Image.Image, rng: random.Random, scene: Scene) -> Image.Image:
    """Saved as JPEG quality 40."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=40)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def cast_and_shadow(image: Image.Image, rng: random.Random, scene: Scene) -> Image.Image:
    """A white-balance cast (channel gains 0.75-1.25) and a soft shadow darkening part of the
    shot by 35-55%."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    gains = np.array([rng.uniform(0.75, 1.25) for _ in range(3)], dtype=np.float32)
    pixels = pixels * (gains / gains.mean())
    height, width = pixels.shape[:2]
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    along = ((xs - width / 2) * math.cos(angle) + (ys - height / 2) * math.sin(angle)) / max(
        width, height
    )
    shade = np.where(along > rng.uniform(-0.2, 0.2), 1 - rng.uniform(0.35, 0.55), 1.0)
    shade = cv2.GaussianBlur(shade.astype(np.float32), (0, 0), max(width, height) * 0.03)
    return Image.fromarray(np.clip(pixels * shade[..., None], 0, 255).astype(np.uint8))


def closeup(image: Image.Image, rng: random.Random, scene: Scene) -> Image.Image:
    """A close-up: 50-65% of each side, somewhere near the middle."""
    width, height = image.size
    share = rng.uniform(0.5, 0.65)
    cw, ch = int(width * share), int(height * share)
    x = rng.randint(int(0.1 * (width - cw)), int(0.9 * (width - cw)))
    y = rng.randint(int(0.1 * (height - ch)), int(0.9 * (height - ch)))
    return image.crop((x, y, x + cw, y + ch))


REAL_TRANSFORMS: dict[str, Callable[[Image.Image, random.Random, Scene], Image.Image]] = {
    "perspective": perspective,
    "occlusion": occlusion,
    "small_on_texture": small_on_texture,
    "jpeg40": jpeg40,
    "cast_and_shadow": cast_and_shadow,
    "closeup": closeup,
}
