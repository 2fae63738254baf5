"""Query-side views of a photo: which framings are made, how their hits merge, odd crops."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cumpair.embed.query import QueryView, best_over_views, embed_query, query_views


def test_views_start_with_the_photo_as_taken_then_a_centre_crop_and_corner_windows():
    photo = Image.new("RGB", (300, 200), (200, 10, 10))
    views = query_views(photo)
    assert views[0].name == "full" and views[0].handicap == 0.0
    assert views[0].image.size == (300, 200)
    # A flat photo shows no object: no framed view.
    names = ["centre 0.6", "window 0,0", "window 0,1", "window 1,0", "window 1,1"]
    assert [v.name for v in views[1:]] == names
    assert {v.image.size for v in views[1:]} == {(180, 120)}
    assert all(v.handicap > 0 for v in views[1:])


def test_a_product_on_a_plain_backdrop_adds_its_framed_view_when_asked():
    photo = Image.new("RGB", (400, 300), (235, 235, 240))
    photo.paste((200, 30, 30), (40, 160, 140, 260))
    photo.paste((30, 60, 200), (60, 190, 120, 220))
    assert "framed" not in [v.name for v in query_views(photo)]  # off by default
    views = {v.name: v for v in query_views(photo, framed=True)}
    assert views["framed"].image.size == (224, 224)
    red = np.asarray(views["framed"].image)[..., 0] > 150
    assert red.mean() > 0.3  # the 100-px box fills the framed view, not a 400-px scene


def test_other_views_lift_the_photos_own_score_but_never_replace_it():
    views = [QueryView("full", None, 0.0), QueryView("window", None, 0.02)]
    # Offer 3 fills a window (a second product in a corner of the shot) but the photo as taken
    # matches offer 1 best: offer 1 stays first. Offer 3, not among the photo's own hits, is
    # given the lowest of them (0.70) as its own score.
    merged = best_over_views([[(1, 0.80), (2, 0.70)], [(2, 0.81), (3, 0.90)]], views, gain=0.4)
    assert merged == [
        (1, 0.80),
        (3, pytest.approx(0.70 + 0.4 * 0.18)),
        (2, pytest.approx(0.70 + 0.4 * 0.09)),
    ]
    assert best_over_views([[(1, 0.5)], [(1, 0.4)]], views) == [(1, 0.5)]  # never lowered


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
