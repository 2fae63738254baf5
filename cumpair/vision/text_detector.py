"""RapidOCR's text detection, run without RapidOCR's engine: its model file, its steps.

`from rapidocr import RapidOCR` costs a photo query most of its start-up (0.6-0.7 CPU s, nearly
all of it `rapidocr.inference_engine.base` and the OmegaConf loads of its model tables), though
the text gate needs only the detection model and its few NumPy/OpenCV steps. `TextDetector`
runs that model (from RapidOCR's package folder) through ONNX Runtime with RapidOCR's session
options and takes RapidOCR's steps for a detection-only call (`RapidOCR(params)(bgr)` with
`text_gate.DETECTOR_PARAMS`, rapidocr 3.x): its own `utils.process_img` (plain OpenCV, a
millisecond to import) bounds the sides (30 .. 2000 px) and maps the boxes back; the resize to
`limit_side_len` in multiples of 32, the normalisation and the DB post-processing (threshold,
dilation, contours, box score, unclip, minimum sizes) are copied here, because the module that
holds them (`rapidocr.ch_ppocr_det`) imports the engine and its model tables. The boxes are
RapidOCR's to the pixel, in no particular order (RapidOCR sorts them top to bottom;
tests/test_vision_text_detector.py compares them); an image RapidOCR would pad first (a strip
wider than 8:1 or 30 px tall at most) is not handled here: `detect` returns None and the caller
asks RapidOCR itself.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np

#: RapidOCR's default detection model (PP-OCRv6 small), in its package's `models` folder.
MODEL_NAME = "PP-OCRv6_det_small.onnx"

# RapidOCR's defaults for what `DETECTOR_PARAMS` leaves alone (its config.yaml).
_MIN_SIDE, _MAX_SIDE = 30, 2000  # Global.min_side_len, max_side_len
_PAD_RATIO, _PAD_HEIGHT = 8, 30  # Global.width_height_ratio, min_height (vertical padding)
_THRESH, _BOX_THRESH, _MAX_CANDIDATES, _UNCLIP_RATIO, _MIN_SIZE = 0.3, 0.5, 1000, 1.6, 3
_DILATION = np.array([[1, 1], [1, 1]])
_MEAN = _STD = np.array([0.5, 0.5, 0.5])


def model_path() -> Path | None:
    """The detection model RapidOCR ships, found without importing RapidOCR; None when
    RapidOCR is not installed or has not downloaded it yet."""
    spec = importlib.util.find_spec("rapidocr")  # a top-level package: not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / MODEL_NAME
    return path if path.is_file() else None


class TextDetector:
    """RapidOCR's text detection over `path` (see the module docstring); not thread-safe."""

    def __init__(self, path: Path, limit_side_len: int, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()  # as RapidOCR's OrtInferSession makes them
        options.log_severity_level = 4
        options.enable_cpu_mem_arena = False
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if 1 <= threads <= (os.cpu_count() or 1):
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._limit = limit_side_len

    def detect(self, bgr: np.ndarray) -> np.ndarray | None:
        """The text boxes (N x 4 x 2, in `bgr`'s pixels) RapidOCR finds in `bgr` (H x W x 3,
        uint8), possibly none; None when RapidOCR would pad the image first (not done here)."""
        from rapidocr.utils.process_img import map_boxes_to_original, resize_image_within_bounds

        ori_h, ori_w = bgr.shape[:2]
        img, ratio_h, ratio_w = resize_image_within_bounds(bgr, _MIN_SIDE, _MAX_SIDE)
        h, w = img.shape[:2]
        if h <= _PAD_HEIGHT or w / h > _PAD_RATIO:
            return None
        resized = _resize_to_32(img, self._limit / max(h, w) if max(h, w) > self._limit else 1.0)
        if resized is None:
            return np.zeros((0, 4, 2), dtype=np.float32)
        # In float64 past the scaling, as RapidOCR's (NumPy arrays of) mean and deviation make it
        pixels = (resized.astype("float32") * (1 / 255.0) - _MEAN) / _STD
        pixels = np.expand_dims(pixels.transpose((2, 0, 1)), axis=0).astype(np.float32)
        pred = self._session.run(None, {self._input: pixels})[0][:, 0, :, :]
        boxes = _boxes(pred[0], h, w)
        if not len(boxes):
            return np.zeros((0, 4, 2), dtype=np.float32)
        record = {"preprocess": {"ratio_h": ratio_h, "ratio_w": ratio_w}}
        return map_boxes_to_original(boxes, record, ori_h, ori_w)


def _resize_to_32(img: np.ndarray, ratio: float) -> np.ndarray | None:
    h, w = img.shape[:2]
    resize_h = int(round(int(h * ratio) / 32) * 32)
    resize_w = int(round(int(w * ratio) / 32) * 32)
    if resize_w <= 0 or resize_h <= 0:
        return None
    return cv2.resize(img, (resize_w, resize_h))


def _boxes(pred: np.ndarray, dest_h: int, dest_w: int) -> np.ndarray:
    """DB post-processing (RapidOCR's `DBPostProcess`, fast score, dilation on), then its
    `filter_det_res`: boxes (float32) in a `dest_w` x `dest_h` image."""
    height, width = pred.shape
    mask = cv2.dilate((pred > _THRESH).astype(np.uint8), _DILATION)
    contours, _ = cv2.findContours(
        (mask * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE
    )
    kept = []
    for contour in contours[:_MAX_CANDIDATES]:
        points, sside = _mini_box(contour)
        if sside < _MIN_SIZE or _score(pred, points.reshape(-1, 2)) < _BOX_THRESH:
            continue
        box, sside = _mini_box(_unclip(points))
        if sside < _MIN_SIZE + 2:
            continue
        box[:, 0] = np.clip(np.round(box[:, 0] / width * dest_w), 0, dest_w)
        box[:, 1] = np.clip(np.round(box[:, 1] / height * dest_h), 0, dest_h)
        box = _clockwise(box.astype(np.int32))
        box[:, 0] = np.minimum(np.maximum(box[:, 0], 0), dest_w - 1).astype(np.int32)
        box[:, 1] = np.minimum(np.maximum(box[:, 1], 0), dest_h - 1).astype(np.int32)
        if int(np.linalg.norm(box[0] - box[1])) > 3 and int(np.linalg.norm(box[0] - box[3])) > 3:
            kept.append(box)
    return np.array(kept, dtype=np.float32).reshape(-1, 4, 2)


def _mini_box(contour: np.ndarray) -> tuple[np.ndarray, float]:
    rect = cv2.minAreaRect(contour)
    points = sorted(list(cv2.boxPoints(rect)), key=lambda x: x[0])
    one, four = (0, 1) if points[1][1] > points[0][1] else (1, 0)
    two, three = (2, 3) if points[3][1] > points[2][1] else (3, 2)
    return np.array([points[one], points[two], points[three], points[four]]), min(rect[1])


def _score(pred: np.ndarray, box: np.ndarray) -> float:
    h, w = pred.shape[:2]
    box = box.copy()
    xmin = np.clip(np.floor(box[:, 0].min()).astype(np.int32), 0, w - 1)
    xmax = np.clip(np.ceil(box[:, 0].max()).astype(np.int32), 0, w - 1)
    ymin = np.clip(np.floor(box[:, 1].min()).astype(np.int32), 0, h - 1)
    ymax = np.clip(np.ceil(box[:, 1].max()).astype(np.int32), 0, h - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    box[:, 0] = box[:, 0] - xmin
    box[:, 1] = box[:, 1] - ymin
    cv2.fillPoly(mask, box.reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(pred[ymin : ymax + 1, xmin : xmax + 1], mask)[0]


def _unclip(box: np.ndarray) -> np.ndarray:
    # Shapely's area and length, as RapidOCR computes them (GEOS's sums, to the last bit);
    # imported only here: a photo without a text-like region never gets this far.
    import pyclipper
    from shapely.geometry import Polygon

    poly = Polygon(box)
    distance = poly.area * _UNCLIP_RATIO / poly.length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return np.array(offset.Execute(distance)).reshape((-1, 1, 2))


def _clockwise(pts: np.ndarray) -> np.ndarray:
    x_sorted = pts[np.argsort(pts[:, 0]), :]
    left, right = x_sorted[:2, :], x_sorted[2:, :]
    tl, bl = left[np.argsort(left[:, 1]), :]
    tr, br = right[np.argsort(right[:, 1]), :]
    return np.array([tl, tr, br, bl], dtype="float32")
