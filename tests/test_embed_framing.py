"""Framing a product photo: the object is cut from its backdrop (or from a cluttered scene), and
nothing is returned (so the whole photo is used) when no object is found."""

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage import data

from cumpair.embed.framing import FILL, framed_product


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
    framed = framed_product(photo)
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
    framed = framed_product(scene)
    assert framed.width < 260  # not the whole 720-px scene
    assert _red_share(framed) > 0.4


def test_images_without_a_backdrop_give_no_view():
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    assert framed_product(noise) is None
    assert framed_product(Image.new("RGB", (50, 30), (10, 200, 10))) is None
    assert framed_product(Image.new("L", (1, 1))) is None


def test_real_photos_without_a_backdrop_give_no_view_rather_than_a_guess():
    """Real floors, walls and scenes: framing used to crop their centre square, or a tiny
    smooth corner taken for a backdrop; now it declines and the whole photo is embedded."""
    for name in ("grass", "gravel", "brick", "coffee"):
        pixels = getattr(data, name)()
        photo = Image.fromarray(np.stack([pixels] * 3, -1) if pixels.ndim == 2 else pixels)
        view = framed_product(photo)
        assert view is None or view.width >= 0.3 * min(photo.size), name


def test_a_small_smooth_corner_is_not_taken_for_the_products_backdrop():
    scene = Image.fromarray(data.astronaut()).resize((720, 720))
    corner = _gradient(200, (240, 236, 220), (225, 215, 190))  # 8% of the frame
    corner.paste(_object(66), (66, 66))
    scene.paste(corner, (0, 520))
    view = framed_product(scene)
    assert view is None or view.width > 300  # never the 66-px box in the corner


def test_view_at_a_requested_size_frames_what_the_full_resolution_view_frames():
    photo = _gradient(400, (250, 250, 255), (190, 210, 235))
    photo.paste(_object(), (60, 200))
    small = framed_product(photo, 96)
    assert small.size == (96, 96)
    full = np.asarray(framed_product(photo).resize((96, 96), Image.Resampling.BOX), np.float32)
    assert np.abs(np.asarray(small, np.float32) - full).mean() < 4
    assert tuple(int(v) for v in np.asarray(small)[1, 1]) == FILL


def test_a_large_photo_is_averaged_down_to_the_size_not_sampled():
    # One-pixel stripes: sampling every few pixels would keep them at full contrast (aliasing);
    # the view must show their average, the grey they look like from a distance.
    photo = Image.new("RGB", (1600, 1600), (255, 255, 255))
    stripes = np.zeros((900, 900, 3), np.uint8)
    stripes[::2] = (200, 40, 40)
    photo.paste(Image.fromarray(stripes), (350, 350))
    view = np.asarray(framed_product(photo, 64), np.float32)[16:48, 16:48]
    assert view.std(axis=(0, 1)).max() < 8  # sampled stripes: a std near 100 in red
    assert view[..., 0].mean() > view[..., 1].mean() + 40  # still the stripes' red


def test_a_size_below_one_pixel_is_refused():
    with pytest.raises(ValueError, match="size"):
        framed_product(_object(), 0)
