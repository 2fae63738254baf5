"""The product's box read off the encoder's activation map: where, when not, and on a real photo."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cumpair.embed.saliency import SALIENT_MARGIN, salient_box


def _map_with_blob(rows: slice, cols: slice, *, base: float = 1.0, peak: float = 5.0):
    activation = np.full((7, 7), base, dtype=np.float32)
    activation[rows, cols] = peak
    return activation


def test_the_box_holds_the_strong_cells_around_the_peak_with_a_margin():
    activation = _map_with_blob(slice(4, 6), slice(1, 3))  # rows 4-5, cols 1-2 of 7
    box = salient_box(activation, (700, 350))
    expected = (
        int((1 / 7 - SALIENT_MARGIN) * 700),
        int((4 / 7 - SALIENT_MARGIN) * 350),
        round((3 / 7 + SALIENT_MARGIN) * 700),
        round((6 / 7 + SALIENT_MARGIN) * 350),
    )
    assert box == expected


def test_the_margin_is_a_share_of_the_photo_whatever_the_map_resolution():
    # The same object on the 7 x 7 map of a 224-px input and the 14 x 14 map of a 448-px one:
    # the same box (a margin counted in cells shrank by half on the finer map and cut into the
    # product on the encoder's 10 x 10 map).
    coarse = _map_with_blob(slice(2, 4), slice(2, 5))
    fine = np.kron(coarse, np.ones((2, 2), dtype=np.float32))
    assert salient_box(fine, (700, 700)) == salient_box(coarse, (700, 700))


def test_only_the_group_holding_the_strongest_cell_is_boxed():
    activation = _map_with_blob(slice(0, 2), slice(0, 2), peak=4.0)
    activation[5:7, 5:7] = 6.0  # a second, stronger object in the other corner
    left, top, right, bottom = salient_box(activation, (70, 70))
    assert left >= 40 and top >= 40 and right == 70 and bottom == 70


def test_a_flat_map_or_a_box_of_nearly_the_whole_photo_gives_none():
    assert salient_box(np.full((7, 7), 3.0), (224, 224)) is None
    assert salient_box(np.zeros((7, 7)), (224, 224)) is None
    assert salient_box(_map_with_blob(slice(0, 7), slice(0, 6)), (224, 224)) is None


def test_a_malformed_map_is_refused():
    with pytest.raises(ValueError, match="2-d activation map"):
        salient_box(np.ones((1, 7, 7)), (224, 224))
    with pytest.raises(ValueError, match="finite"):
        salient_box(np.full((7, 7), np.nan), (224, 224))


@pytest.mark.slow
def test_a_real_photo_small_on_a_real_texture_is_boxed(tmp_path):
    """scikit-image's coffee cup photo pasted small on its grass and brick photos: the box read
    off EfficientNet-Lite0's own map holds most of the photo and leaves most of the texture out."""
    from skimage import data

    from cumpair.embed.efficientnet import EfficientNetLite0Encoder

    encoder = EfficientNetLite0Encoder(threads=2, model_dir=tmp_path)
    product = Image.fromarray(data.coffee()).resize((200, 160))
    for texture in (data.grass(), data.brick()):
        scene = Image.fromarray(texture).convert("RGB").resize((640, 480))
        scene.paste(product, (380, 200))
        _, activation = encoder.embed_with_activation(encoder.prepare_image(scene)[None])
        left, top, right, bottom = salient_box(activation[0], scene.size)
        inside = max(0, min(right, 580) - max(left, 380)) * max(0, min(bottom, 360) - max(top, 200))
        assert inside >= 0.8 * 200 * 160  # most of the cup's photo
        assert (right - left) * (bottom - top) < 0.5 * 640 * 480  # not most of the scene
