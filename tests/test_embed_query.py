"""Query-side views of a photo: which framings are made, how their hits merge, odd crops."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cumpair.embed.query import QueryView, best_over_views, embed_query, query_views


def test_views_start_with_the_photo_as_taken_and_keep_its_size_ratio():
    photo = Image.new("RGB", (300, 200), (200, 10, 10))
    views = query_views(photo)
    assert views[0].name == "full" and views[0].handicap == 0.0
    assert views[0].image.size == (300, 200)
    windows = [v for v in views if v.name.startswith("window")]
    assert len(windows) == 9
    assert {v.image.size for v in windows} == {(165, 110)}
    assert len({v.name for v in views}) == len(views)


def test_best_over_views_keeps_each_offers_best_handicapped_score():
    views = [QueryView("full", None, 0.0), QueryView("window", None, 0.02)]
    merged = best_over_views([[(1, 0.80), (2, 0.70)], [(2, 0.81), (3, 0.90)]], views)
    assert merged == [(3, pytest.approx(0.88)), (1, 0.80), (2, pytest.approx(0.79))]


def test_best_over_views_refuses_mismatched_lists():
    with pytest.raises(ValueError, match="2 hit lists for 1 views"):
        best_over_views([[], []], [QueryView("full", None)])


class _Encoder:
    """Prepares by mean colour; rejects images that are entirely black (an 'odd crop')."""

    dim = 3

    def prepare_image(self, image):
        pixels = np.asarray(image, dtype=np.float32)
        if not pixels.any():
            raise ValueError("nothing to frame")
        return pixels.mean(axis=(0, 1))

    def embed_prepared(self, pixels):
        return pixels / np.linalg.norm(pixels, axis=1, keepdims=True)


def test_a_view_the_encoder_rejects_is_skipped_but_a_rejected_photo_raises():
    photo = Image.new("RGB", (100, 100), (0, 0, 0))
    photo.paste((255, 255, 255), (0, 0, 40, 40))  # only the top-left window sees anything
    views, vectors = embed_query(_Encoder(), photo)
    assert views[0].name == "full"
    assert "window 2,2" not in [v.name for v in views]
    assert vectors.shape == (len(views), 3)
    with pytest.raises(ValueError, match="nothing to frame"):
        embed_query(_Encoder(), Image.new("RGB", (50, 50)))


def test_bad_input_raises_an_image_error_before_any_model_work():
    from cumpair.vision.images import ImageError

    with pytest.raises(ImageError):
        embed_query(_Encoder(), b"not an image")
