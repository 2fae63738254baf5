"""Framing a product photo: the object is cut from its backdrop (or from a cluttered scene)."""

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage import data

from cumpair.embed.framing import FILL, product_pixels, product_view


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


def test_view_at_a_requested_size_frames_what_the_full_resolution_view_frames():
    photo = _gradient(400, (250, 250, 255), (190, 210, 235))
    photo.paste(_object(), (60, 200))
    small = product_view(photo, 96)
    assert small.size == (96, 96)
    full = np.asarray(product_view(photo).resize((96, 96), Image.Resampling.BOX), np.float32)
    assert np.abs(np.asarray(small, np.float32) - full).mean() < 4
    assert tuple(int(v) for v in np.asarray(small)[1, 1]) == FILL


def test_view_at_a_size_of_a_photo_without_an_object_is_its_centre_square():
    flat = _gradient(90, (250, 250, 255), (30, 60, 90)).crop((0, 0, 60, 90))  # taller than wide
    view = np.asarray(product_view(flat, 30), np.float32)
    centre = flat.crop((0, 15, 60, 75)).resize((30, 30), Image.Resampling.BOX)
    assert view.shape == (30, 30, 3)
    assert np.abs(view - np.asarray(centre, np.float32)).max() <= 2


def test_a_large_photo_is_averaged_down_to_the_size_not_sampled():
    # One-pixel stripes: sampling every few pixels would keep them at full contrast (aliasing);
    # the view must show their average, the grey they look like from a distance.
    photo = Image.new("RGB", (1600, 1600), (255, 255, 255))
    stripes = np.zeros((900, 900, 3), np.uint8)
    stripes[::2] = (200, 40, 40)
    photo.paste(Image.fromarray(stripes), (350, 350))
    view = np.asarray(product_view(photo, 64), np.float32)[16:48, 16:48]
    assert view.std(axis=(0, 1)).max() < 8  # sampled stripes: a std near 100 in red
    assert view[..., 0].mean() > view[..., 1].mean() + 40  # still the stripes' red


def test_product_pixels_are_the_view_with_a_padding_channel():
    photo = _gradient(300, (250, 250, 255), (190, 210, 235))
    photo.paste(_object(90), (100, 40))
    pixels = product_pixels(photo, 80)
    assert pixels.shape == (80, 80, 4) and pixels.dtype == np.uint8
    view = np.asarray(product_view(photo, 80), np.int16)
    assert np.abs(pixels[..., :3].astype(np.int16) - view).max() <= 1


def test_a_size_below_one_pixel_is_refused():
    with pytest.raises(ValueError, match="size"):
        product_view(_object(), 0)
    with pytest.raises(ValueError, match="size"):
        product_pixels(_object(), -3)
