"""Decoding for embedding: JPEGs decode at reduced scale (only what a 224-px view needs), the
vectors stay those of the full-resolution photo, and ONNX sessions leave idle cores alone."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import render_product_photo
from cumpair.embed.efficientnet import EfficientNetLite0Encoder
from cumpair.embed.runtime import OnnxSession
from cumpair.vision.images import ImageTooLargeError, load_image
from tests.model_fixtures import INSTALLED_MODELS


def _encoded(size: tuple[int, int], fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), np.uint8))
    buffer = io.BytesIO()
    small.resize(size).save(buffer, fmt)
    return buffer.getvalue()


def test_jpeg_decodes_at_the_smallest_scale_that_keeps_min_side():
    photo = _encoded((1600, 1200))
    assert load_image(photo).size == (1600, 1200)  # the default: every pixel (OCR needs them)
    assert load_image(photo, min_side=224).size == (400, 300)  # 1/4: 1/8 would be 150 high
    assert load_image(photo, min_side=448).size == (800, 600)
    assert load_image(photo, min_side=2000).size == (1600, 1200)


def test_min_side_leaves_other_formats_and_small_photos_at_full_size():
    assert load_image(_encoded((1600, 1200), "PNG"), min_side=224).size == (1600, 1200)
    assert load_image(_encoded((320, 320)), min_side=224).size == (320, 320)


def test_pixel_limit_applies_to_the_full_resolution_even_when_decoding_small():
    with pytest.raises(ImageTooLargeError):
        load_image(_encoded((1600, 1200)), min_side=224, max_pixels=1_000_000)


def test_min_side_must_be_positive():
    with pytest.raises(ValueError, match="min_side"):
        load_image(_encoded((64, 64)), min_side=0)


@pytest.fixture(scope="module")
def encoder():
    """The installed export (index_data/models): these tests are about decoding, and a fresh
    model folder re-exported the model in this process (3.8 CPU s); test_embed_offline.py
    tests the export."""
    return EfficientNetLite0Encoder(model_dir=INSTALLED_MODELS, threads=2)


@pytest.mark.slow
def test_vector_of_shop_sized_jpeg_bytes_matches_the_full_resolution_photo(encoder):
    # The crawl embeds JPEG bytes (decoded small), a search query often a decoded photo.
    offers = build_catalog(n_products=6).offers[:6]
    photos = [
        render_product_photo(o).resize((1600, 1600), Image.Resampling.BICUBIC) for o in offers
    ]
    jpegs = []
    for photo in photos:
        buffer = io.BytesIO()
        photo.save(buffer, "JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    from_bytes = encoder.encode_images(jpegs)
    from_full = encoder.encode_images([load_image(jpeg) for jpeg in jpegs])
    assert np.min(np.sum(from_bytes * from_full, axis=1)) > 0.995


@pytest.mark.slow
def test_onnx_sessions_let_idle_threads_sleep(tmp_path):
    # Spinning intra-op threads would take the cores the crawl's preparation threads need.
    path = tmp_path / "linear.onnx"
    torch.onnx.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(path), dynamo=False)
    session = OnnxSession(path, threads=2)
    assert session.config("session.intra_op.allow_spinning") == "0"
    assert session.run({session.input_names[0]: np.ones((1, 3), np.float32)}).shape == (1, 2)
