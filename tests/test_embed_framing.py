"""Framing a product photo: the object is cut from its backdrop (or from a cluttered scene)."""

import numpy as np
from PIL import Image, ImageDraw
from skimage import data

from cumpair.embed.framing import FILL, product_view


def _object(size: int = 120) -> Image.Image:
    """A red box with a dark outline and a blue stripe: a stand-in for a product."""
    art = Image.new("RGB", (size, size), (200, 30, 30))
    draw = ImageDraw.Draw(art)
    draw.rectangle((0, 0, size - 1, size - 1), outline=(20, 20, 20), width=4)
    draw.rectangle((size // 4, size // 3, 3 * size // 4, size // 2), fill=(30, 60, 200))
    return art


def _gradient(size: int, top: tuple, bottom: tuple) -> Image.Image:
    t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    pixels = np.array(top, np.float32) * (1 - t) + np.array(bottom, np.float32) * t
    return Image.fromarray(np.repeat(pixels, size, axis=1).astype(np.uint8))


def _red_share(image: Image.Image) -> float:
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    return float(np.mean((pixels[..., 0] > 150) & (pixels[..., 1] < 90)))


def test_object_on_a_gradient_backdrop_is_cropped_square_onto_grey():
    photo = _gradient(400, (250, 250, 255), (190, 210, 235))
    photo.paste(_object(), (60, 200))
    framed = product_view(photo)
    assert framed.width == framed.height
    assert framed.width < 200  # cropped to the 120-px object plus margin
    assert _red_share(framed) > 0.35  # the object (~0.45 of the crop), not the backdrop
    corner = np.asarray(framed)[2, 2]
    assert tuple(int(v) for v in corner) == FILL  # backdrop replaced by neutral grey


def test_photo_pasted_into_a_cluttered_scene_is_found_inside_it():
    scene = Image.fromarray(data.astronaut()).resize((720, 720))
    shot = _gradient(300, (240, 236, 220), (225, 215, 190))
    shot.paste(_object(150), (70, 80))
    scene.paste(shot, (330, 330))
    framed = product_view(scene)
    assert framed.width < 260  # not the whole 720-px scene
    assert _red_share(framed) > 0.4


def test_images_without_a_backdrop_are_returned_unchanged():
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    assert product_view(noise).size == (64, 64)
    flat = Image.new("RGB", (50, 30), (10, 200, 10))
    assert product_view(flat).size == (50, 30)
    assert product_view(Image.new("L", (1, 1))).size == (1, 1)
