"""The text gate: labels (also as phone photos) reach OCR, product photos without text do not."""

from __future__ import annotations

import numpy as np
import pytest

from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import render_label, render_product_photo
from cumpair.vision.evaluation import simulate_photo
from cumpair.vision.image_specs import read_image_specs
from cumpair.vision.ocr_types import OcrOptions
from cumpair.vision.text_gate import GateOptions, has_text_lines


@pytest.fixture(scope="module")
def offers():
    return build_catalog().offers


def test_labels_have_text_lines_and_plain_photos_do_not(offers):
    blank = np.full((300, 300, 3), 255, dtype=np.uint8)
    assert not has_text_lines(blank)
    for offer in offers[:6]:
        label = render_label(offer)[0]
        assert has_text_lines(np.asarray(label))
        assert has_text_lines(np.asarray(simulate_photo(label, seed=3)))
    photos = [has_text_lines(np.asarray(render_product_photo(o))) for o in offers[:20]]
    assert sum(photos) <= 4  # clip-art on a backdrop: mostly nothing to read


@pytest.mark.slow
def test_every_demo_label_passes_the_gate(offers):
    missed = [o.sku for o in offers if not has_text_lines(np.asarray(render_label(o)[0]))]
    assert missed == []


def test_a_gated_photo_keeps_its_colours_and_a_label_its_specs(offers, tmp_path):
    offer = next(o for o in offers if not has_text_lines(np.asarray(render_product_photo(o))))
    photo = tmp_path / "photo.png"
    render_product_photo(offer).save(photo)
    label = tmp_path / "label.png"
    render_label(offer)[0].save(label)
    options = OcrOptions(engines=("tesseract",), max_variants=1)
    gated = read_image_specs(photo, ocr_options=options, text_gate=GateOptions())
    assert gated.gated and gated.ocr.text == ""
    assert gated.specs.dominant_colors  # the photo's colours are still measured
    read = read_image_specs(label, ocr_options=options, text_gate=GateOptions())
    plain = read_image_specs(label, ocr_options=options)
    assert not read.gated and read.specs.to_dict() == plain.specs.to_dict()


def test_gate_options_are_checked():
    with pytest.raises(ValueError):
        GateOptions(max_height=0)
    with pytest.raises(ValueError):
        GateOptions(min_aspect=-1)


def test_a_banner_too_thin_for_the_detector_is_read_not_refused():
    """RapidOCR cannot scale a 5000 x 30 strip into its detector (ResizeImgError): the gate
    then lets it through and the chain reads it with Tesseract, instead of failing the item."""
    from PIL import Image, ImageDraw

    from cumpair.vision.engines import get_engine

    banner = Image.new("RGB", (5000, 30), "white")
    ImageDraw.Draw(banner).text((10, 8), "Power 250 W, weight 1.5 kg " * 20, fill="black")
    pixels = np.asarray(banner)
    assert has_text_lines(pixels)
    assert get_engine("rapidocr").read(pixels) == []
    specs = read_image_specs(pixels, text_gate=GateOptions())
    assert "250 W" in specs.ocr.text
