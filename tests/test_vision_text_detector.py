"""The text gate's detector, run without RapidOCR's import, finds RapidOCR's boxes exactly.

RapidOCR itself (with the gate's parameters) is the reference: demo labels (text lines), demo
product photos (mostly none), a photo past RapidOCR's 2000 px bound (resized twice) and one
RapidOCR pads (a strip), which the direct detector leaves to RapidOCR.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import render_label, render_product_photo
from cumpair.vision import text_gate
from cumpair.vision.text_detector import TextDetector, model_path

rapidocr = pytest.importorskip("rapidocr")


@pytest.fixture(scope="module")
def detectors():
    reference = rapidocr.RapidOCR(params=text_gate.DETECTOR_PARAMS)
    path = model_path()
    assert path is not None, "RapidOCR's detection model is not in its package folder"
    ours = TextDetector(path, text_gate.DETECTOR_PARAMS["Det.limit_side_len"], 1)
    return reference, ours


def _images() -> list[tuple[str, np.ndarray]]:
    offers = build_catalog(n_products=6, seed=3).offers[:8]
    images = [(f"label {o.sku}", render_label(o)[0]) for o in offers[:4]]
    images += [(f"photo {o.sku}", render_product_photo(o)) for o in offers[:5]]
    label = render_label(offers[0])[0]
    images.append(("label at 2600 px", label.resize((2600, 2600 * label.height // label.width))))
    images.append(("label at 40 px", label.resize((40 * label.width // label.height, 40))))
    return [(name, np.asarray(image.convert("RGB"))[:, :, ::-1].copy()) for name, image in images]


def _sorted(boxes) -> list[tuple[float, ...]]:
    return sorted(tuple(box.ravel()) for box in np.asarray(boxes, dtype=np.float64))


@pytest.mark.parametrize(("name", "bgr"), _images(), ids=lambda value: str(value)[:20])
def test_direct_detection_finds_rapidocrs_boxes(detectors, name, bgr):
    reference, ours = detectors
    expected = reference(bgr).boxes
    found = ours.detect(bgr)
    assert found is not None
    assert _sorted(found) == _sorted(np.zeros((0, 4, 2)) if expected is None else expected)


def test_labels_have_boxes_so_the_comparison_covers_the_post_processing(detectors):
    _, ours = detectors
    labels = [bgr for name, bgr in _images() if name.startswith("label") and "40 px" not in name]
    assert all(len(ours.detect(bgr)) for bgr in labels)


def test_the_same_model_file_as_rapidocr(detectors):
    reference, _ = detectors
    session = reference._load_det_model().session.session
    assert session._model_path == str(model_path())


def test_a_strip_rapidocr_pads_is_left_to_rapidocr_and_the_gate_still_answers(detectors):
    _, ours = detectors
    strip = np.full((40, 400, 3), 255, dtype=np.uint8)  # wider than 8:1: RapidOCR pads it
    assert ours.detect(strip) is None
    assert text_gate.has_text_lines(strip[:, :, ::-1].copy()) is False


def test_the_gate_reads_labels_and_passes_photos():
    offers = build_catalog(n_products=4, seed=2).offers
    label = np.asarray(render_label(offers[0])[0].convert("RGB"))
    photo = np.asarray(Image.Image.convert(render_product_photo(offers[0]), "RGB"))
    assert text_gate.has_text_lines(label) and not text_gate.has_text_lines(photo)


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((50, 50), dtype=np.uint8),
        np.zeros((50, 50, 4), dtype=np.uint8),
        np.zeros((0, 0, 3), dtype=np.uint8),
        np.zeros((50, 50, 3), dtype=np.float32),
    ],
    ids=["grey", "rgba", "empty", "float"],
)
def test_the_gate_refuses_what_is_not_rgb_with_a_clear_error(pixels):
    with pytest.raises(ValueError, match="H x W x 3 uint8 RGB"):
        text_gate.has_text_lines(pixels)
