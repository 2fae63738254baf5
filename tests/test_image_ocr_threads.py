"""RapidOCR reads on the thread that calls it: the crawl runs several OCR threads side by side,
and `stage/ocr_cpu_s` counts the CPU of those threads only (ONNX Runtime's own pool, a thread per
core spinning between operators, ran beside them uncounted)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from cumpair.vision import engines


def threads_now() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: ONNX Runtime adds no thread")
def test_a_rapidocr_read_starts_no_thread_of_its_own():
    label = Image.new("RGB", (480, 160), "white")
    ImageDraw.Draw(label).text((20, 50), "500 ml  1200 W", fill="black",
                               font=ImageFont.load_default(size=40))  # fmt: skip
    engine = engines.RapidOcrEngine()
    # Loading ONNX Runtime and OpenCV's first parallel call each start a thread for good
    # (RapidOCR uses both): started before counting.
    import cv2
    import onnxruntime  # noqa: F401

    cv2.GaussianBlur(cv2.resize(np.zeros((1000, 1000, 3), np.uint8), (500, 500)), (5, 5), 0)
    before = threads_now()
    words = engine.read(np.asarray(label))
    assert threads_now() == before
    assert "".join(word.text for word in words).replace(" ", "")  # it did read the label
