"""Query-side views of a photo: which framings are made, how their hits merge, odd crops."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cumpair.embed.efficientnet import IMAGE_SIZE, EfficientNetLite0Encoder
from cumpair.embed.query import (
    OWN_MATCH_TRUSTED,
    TRUST_WIDTH,
    QueryView,
    best_over_views,
    embed_query,
    embed_views,
    first_pass,
    own_match_trust,
    vector_outside,
)


class _Encoder:
    """Prepares by mean colour (rejecting all-black images: an 'odd crop'); with `activation`,
    also gives that activation map for every image, as EfficientNet's last feature map."""

    name, version, dim = "mean-colour", "1", 3

    def __init__(self, activation=None) -> None:
        self.activation = activation
        self.embedded = []

    def prepare_image(self, image):
        pixels = np.asarray(image, dtype=np.float32)
        if not pixels.any():
            raise ValueError("nothing to frame")
        self.embedded.append(image.size)
        return pixels.mean(axis=(0, 1))

    def embed_prepared(self, pixels):
        return pixels / np.linalg.norm(pixels, axis=1, keepdims=True)

    def encode_images(self, images):
        return self.embed_prepared(np.stack([self.prepare_image(image) for image in images]))


class _ActivationEncoder(_Encoder):
    """Its n-th forward pass with an activation map gives `maps[n]` (the last one thereafter)."""

    def __init__(self, *maps) -> None:
        super().__init__()
        self.maps = maps
        self.passes = 0

    def embed_with_activation(self, pixels):
        activation = self.maps[min(self.passes, len(self.maps) - 1)]
        self.passes += 1
        return self.embed_prepared(pixels), np.stack([activation] * len(pixels))


def _blob_map():
    activation = np.ones((7, 7), dtype=np.float32)
    activation[4:6, 1:3] = 5.0  # the product: rows 4-5, cols 1-2
    return activation


def test_the_salient_view_is_the_box_found_inside_the_box_of_the_photos_own_map():
    photo = Image.new("RGB", (700, 350), (90, 120, 60))
    encoder = _ActivationEncoder(_blob_map())
    views, vectors = embed_query(encoder, photo)
    assert [v.name for v in views] == ["full", "salient"]
    assert views[0].image.size == (700, 350)
    # 2 x 2 cells of 100 x 50 px with a 0.25 cell margin: 250 x 125; the same cells of that
    # crop's own map: 90 x 46.
    assert views[1].image.size == (90, 46)
    assert vectors.shape == (2, 3)
    assert encoder.embedded == [(700, 350), (250, 125), (90, 46)]


def test_each_forward_pass_is_timed_as_embedding_and_the_cropping_between_as_views():
    """`lap` closes a stage when it ends: what a photo query's stage breakdown reads."""
    log = []

    class _Logged(_ActivationEncoder):
        def prepare_image(self, image):
            log.append("prepare")
            return super().prepare_image(image)

        def embed_prepared(self, pixels):
            log.append("forward")
            return super().embed_prepared(pixels)

    photo = Image.new("RGB", (700, 350), (90, 120, 60))
    encoder = _Logged(_blob_map())
    start = first_pass(encoder, photo, lap=log.append)
    embed_views(encoder, start.others, lap=log.append)
    # The photo, the first box (whose pass finds the box inside it), that inner box.
    assert log == [
        *("prepare", "views", "forward", "embedding", "views"),
        *("prepare", "views", "forward", "embedding"),
        *("prepare", "views", "forward", "embedding"),
    ]


def test_a_first_box_with_nothing_more_inside_is_the_salient_view():
    photo = Image.new("RGB", (700, 350), (90, 120, 60))
    encoder = _ActivationEncoder(_blob_map(), np.full((7, 7), 2.0, dtype=np.float32))
    views, vectors = embed_query(encoder, photo)
    assert views[1].image.size == (250, 125)
    assert encoder.embedded == [(700, 350), (250, 125)]  # its vector came with its map
    assert vectors.shape == (2, 3)


def test_no_salient_view_without_an_object_or_an_activation_map():
    photo = Image.new("RGB", (300, 200), (200, 10, 10))
    flat = _ActivationEncoder(np.full((7, 7), 2.0, dtype=np.float32))
    assert [v.name for v in embed_query(flat, photo)[0]] == ["full"]
    assert [v.name for v in embed_query(_Encoder(), photo)[0]] == ["full"]
    assert [
        v.name for v in embed_query(_ActivationEncoder(_blob_map()), photo, views=False)[0]
    ] == ["full"]


def test_a_product_on_a_plain_backdrop_adds_its_framed_view_when_asked():
    photo = Image.new("RGB", (400, 300), (235, 235, 240))
    photo.paste((200, 30, 30), (40, 160, 140, 260))
    photo.paste((30, 60, 200), (60, 190, 120, 220))
    assert "framed" not in [v.name for v in embed_query(_Encoder(), photo)[0]]  # off by default
    views = {v.name: v for v in embed_query(_Encoder(), photo, framed=True)[0]}
    red = np.asarray(views["framed"].image)[..., 0] > 150
    assert red.mean() > 0.3  # the 100-px box fills the framed view, not a 400-px scene
    # Rendered at the encoder's input side (EfficientNet-Lite0's 320), not at a fixed 224 that
    # the encoder would upscale again; at the photo's own scale for an encoder without one.
    assert views["framed"].image.size[0] < 224
    sized = _Encoder()
    sized.input_side = EfficientNetLite0Encoder.input_side
    views = {v.name: v for v in embed_query(sized, photo, framed=True)[0]}
    assert views["framed"].image.size == (IMAGE_SIZE, IMAGE_SIZE) == (320, 320)


def test_other_views_lift_the_photos_own_score_but_never_replace_it():
    views = [QueryView("full", None, 0.0), QueryView("salient", None, 0.02)]
    # The photo as taken matches nothing well (best 0.45): the salient view's hits lift offers
    # by `gain` of their excess. Offer 3, not among the photo's own hits, is given the lowest
    # of them (0.40) as its own score.
    merged = best_over_views([[(1, 0.45), (2, 0.40)], [(2, 0.81), (3, 0.50)]], views, gain=0.4)
    assert merged == [
        (2, pytest.approx(0.40 + 0.4 * 0.39)),
        (1, 0.45),
        (3, pytest.approx(0.40 + 0.4 * 0.08)),
    ]
    assert best_over_views([[(1, 0.5)], [(1, 0.4)]], views) == [(1, 0.5)]  # never lowered


def test_a_photo_that_matches_well_on_its_own_is_not_lifted_by_other_views():
    """A product with another known product in a corner: its salient box may be that other
    product's exact photo (cosine 0.95), which must not win over the photo's own match."""
    views = [QueryView("full", None), QueryView("salient", None)]
    good = OWN_MATCH_TRUSTED + TRUST_WIDTH
    merged = best_over_views([[(1, good), (2, 0.5)], [(2, 0.95)]], views)
    assert merged == [(1, good), (2, 0.5)]
    assert own_match_trust(good) == 0.0
    assert own_match_trust(OWN_MATCH_TRUSTED) == 0.5
    assert own_match_trust(0.3) == 1.0


def test_best_over_views_refuses_mismatched_lists():
    with pytest.raises(ValueError, match="2 hit lists for 1 views"):
        best_over_views([[], []], [QueryView("full", None)])


def test_a_view_the_encoder_rejects_is_skipped_but_a_rejected_photo_raises():
    photo = Image.new("RGB", (700, 350), (0, 0, 0))
    photo.paste((255, 255, 255), (0, 0, 100, 50))  # the salient box (bottom left) is all black
    views, vectors = embed_query(_ActivationEncoder(_blob_map()), photo)
    assert [v.name for v in views] == ["full"]
    assert vectors.shape == (1, 3)
    with pytest.raises(ValueError, match="nothing to frame"):
        embed_query(_ActivationEncoder(_blob_map()), Image.new("RGB", (50, 50)))


def test_bad_input_raises_an_image_error_before_any_model_work():
    from cumpair.vision.images import ImageError

    with pytest.raises(ImageError):
        embed_query(_Encoder(), b"not an image")


def test_the_rest_of_a_shot_is_pooled_from_the_cells_clear_of_the_box():
    feature_map = np.zeros((2, 7, 7), dtype=np.float32)
    feature_map[0, :4, :4] = 1.0  # a known photo in the top-left corner
    feature_map[1, 4:, :] = 1.0  # what the shot is of, below it
    feature_map[1, :4, 4:] = 1.0
    rest = vector_outside(feature_map, (0.0, 0.0, 0.5, 0.5))
    assert rest.shape == (1, 2)
    np.testing.assert_allclose(rest, [[0.0, 1.0]])  # nothing of the corner left
    assert vector_outside(feature_map, (0.0, 0.0, 1.0, 1.0)) is None


@pytest.mark.slow
def test_the_first_pass_keeps_the_feature_map_its_vector_and_box_come_from(tmp_path):
    from skimage import data

    from cumpair.embed.efficientnet import EfficientNetLite0Encoder

    encoder = EfficientNetLite0Encoder(threads=2, model_dir=tmp_path)
    photo = Image.fromarray(data.coffee())
    start = first_pass(encoder, photo)
    prepared = encoder.prepare_image(photo)[None]
    vector, activation = encoder.embed_with_activation(prepared)
    np.testing.assert_allclose(start.vector, vector, atol=1e-5)
    np.testing.assert_allclose(start.feature_map.sum(axis=0), activation[0], rtol=1e-4)
    whole = vector_outside(start.feature_map, (0.0, 0.0, 0.0, 0.0))  # an empty box: all cells
    np.testing.assert_allclose(whole, vector, atol=1e-5)
