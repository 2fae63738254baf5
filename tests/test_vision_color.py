"""Dominant colours: background removal, Lab clustering, naming."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageDraw

from cumpair.vision.color import COLOR_FAMILIES, background_mask, dominant_colors
from cumpair.vision.images import NotAnImageError


def product_shot(background=(245, 245, 245)) -> Image.Image:
    """A red box with a navy stripe on a studio backdrop."""
    image = Image.new("RGB", (400, 300), background)
    draw = ImageDraw.Draw(image)
    draw.rectangle((100, 50, 300, 250), fill=(200, 20, 30))
    draw.rectangle((100, 200, 300, 250), fill=(10, 20, 110))
    return image


def test_background_is_ignored_and_fractions_are_of_the_product():
    colors = dominant_colors(product_shot())
    assert [c.name for c in colors] == ["red", "navy"]
    assert colors[0].fraction == pytest.approx(0.75, abs=0.03)
    assert colors[1].fraction == pytest.approx(0.25, abs=0.03)
    assert colors[0].hex == "#c8141e"


def test_soft_gradient_backdrop_counts_as_background():
    image = product_shot()
    pixels = np.asarray(image).copy()
    gradient = np.linspace(255, 205, pixels.shape[0]).astype(np.uint8)
    backdrop = (pixels == 245).all(axis=2)
    pixels[backdrop] = np.repeat(gradient[:, None], pixels.shape[1], axis=1)[backdrop][:, None]
    names = [c.name for c in dominant_colors(Image.fromarray(pixels))]
    assert names == ["red", "navy"]


def test_white_product_on_dark_backdrop():
    image = Image.new("RGB", (200, 200), (20, 20, 20))
    ImageDraw.Draw(image).ellipse((50, 50, 150, 150), fill=(250, 250, 250))
    assert dominant_colors(image, k=1)[0].name == "white"


def test_photo_without_uniform_background_is_analysed_whole():
    colors = dominant_colors(skimage.data.coffee(), k=3)
    assert 1 <= len(colors) <= 3
    assert sum(c.fraction for c in colors) <= 1.0001
    assert colors == sorted(colors, key=lambda c: c.fraction, reverse=True)


def test_background_mask_marks_border_connected_uniform_region_only():
    mask = background_mask(np.asarray(product_shot()))
    assert mask[0, 0] and mask[150, 20]
    assert not mask[150, 200]


def test_same_image_same_answer():
    assert dominant_colors(product_shot()) == dominant_colors(product_shot())


def test_css3_vocabulary_gives_css_names():
    name = dominant_colors(product_shot(), k=1, vocabulary="css3")[0].name
    assert name in {n for members in COLOR_FAMILIES.values() for n in members}
    assert name in COLOR_FAMILIES["red"]


def test_bad_arguments_and_bad_images_raise():
    with pytest.raises(ValueError):
        dominant_colors(product_shot(), k=0)
    with pytest.raises(ValueError):
        dominant_colors(product_shot(), vocabulary="pantone")
    with pytest.raises(NotAnImageError):
        dominant_colors(b"not an image")
