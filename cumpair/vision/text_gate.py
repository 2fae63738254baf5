"""A fast look for printed text lines, so OCR is spent only on images that have some.

Product photos rarely carry a spec: on 30 real shop photos and 30 demo photos the full OCR chain
found none, at 3-5x a label's OCR time (Tesseract is unsure, so RapidOCR runs on every variant).
RapidOCR's detection model alone (no recognition) finds text regions in a fraction of that;
a text *line* is a region at least `min_aspect` times wider than tall and at most
`max_height` of the image's height, where a photo's regions are mostly the whole product.
`has_text_lines` answers whether any exists. The detector is one process-wide instance made on
first use under a lock: RapidOCR's detection model run directly (`text_detector`: the same
boxes without RapidOCR's own import, most of a photo query's start-up), or a RapidOCR
instance that never loads its recognition model where that cannot run (no model file yet, an
image RapidOCR pads first).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from cumpair.vision.engines import EngineUnavailableError

DETECTOR_PARAMS = {
    "Global.log_level": "error",
    "Global.use_cls": False,
    "Global.use_rec": False,
    "Det.limit_type": "max",
    # Text lines a label prints stay several pixels tall at 320 (every label of a 200-product
    # demo catalog, and 149 of them as phone photos, still pass; 20 of 149 photos do, real shop
    # photos 2 of 80 as at 480), and the detector costs a third of a first crawl's CPU: a
    # 480 x 480 demo photo 184 -> 73 ms, a label 90 -> 51 ms (one thread, loaded machine).
    "Det.limit_side_len": 320,
    "EngineConfig.onnxruntime.intra_op_num_threads": 1,  # the crawl runs several side by side
}


#: What decides a gate's answers beyond `GateOptions`, for the vision cache's key.
DETECTOR_VERSION = f"det{DETECTOR_PARAMS['Det.limit_side_len']}"


@dataclass(frozen=True, slots=True)
class GateOptions:
    """What counts as a text line (see the module docstring)."""

    min_aspect: float = 2.0
    max_height: float = 0.25

    def __post_init__(self) -> None:
        if self.min_aspect <= 0 or not 0 < self.max_height <= 1:
            raise ValueError("min_aspect must be > 0 and max_height within (0, 1]")


_detector = None  # a TextDetector once made; False when RapidOCR's model file is not there
_rapidocr = None
_detector_lock = threading.Lock()
_run_lock = threading.Lock()  # a RapidOCR instance keeps per-call state


def has_text_lines(rgb: np.ndarray, options: GateOptions | None = None) -> bool:
    """Whether `rgb` (H x W x 3, uint8) shows at least one printed text line.

    Raises `EngineUnavailableError` when RapidOCR cannot load (callers then OCR everything),
    and `ValueError` for any other array (grey, RGBA, empty: `images.load_image` makes RGB).
    An image too thin for the detector to scale counts as showing text: it is OCR'd, not judged.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or not rgb.size:
        raise ValueError(f"the text gate takes H x W x 3 uint8 RGB, not {rgb.dtype} {rgb.shape}")
    options = options or GateOptions()
    try:
        from rapidocr.utils.process_img import ResizeImgError
    except ImportError as exc:  # pragma: no cover
        raise EngineUnavailableError("rapidocr is not installed") from exc

    bgr = rgb[:, :, ::-1].copy()  # RapidOCR expects BGR like cv2
    with _run_lock:
        detector = _get_detector()
        try:
            boxes = detector.detect(bgr) if detector is not None else None
            if boxes is None:  # no model file to run directly, or an image RapidOCR pads first
                boxes = _get_rapidocr()(bgr).boxes
        except ResizeImgError:  # too thin to scale into the detector (a 5000 x 30 banner):
            return True  # unsure, so OCR it (Tesseract reads such strips)
    if boxes is None:
        return False
    height = rgb.shape[0]
    for box in np.asarray(boxes, dtype=np.float64):
        width = np.linalg.norm(box[1] - box[0])
        tall = np.linalg.norm(box[3] - box[0])
        if tall > 0 and width >= options.min_aspect * tall and tall <= options.max_height * height:
            return True
    return False


def _get_detector():  # -> text_detector.TextDetector | None (no model file)
    global _detector
    if _detector is None:
        with _detector_lock:
            if _detector is None:
                from cumpair.vision.text_detector import TextDetector, model_path

                path = model_path()
                _detector = (
                    TextDetector(
                        path,
                        DETECTOR_PARAMS["Det.limit_side_len"],
                        DETECTOR_PARAMS["EngineConfig.onnxruntime.intra_op_num_threads"],
                    )
                    if path is not None
                    else False
                )
    return _detector or None


def _get_rapidocr():  # -> rapidocr.RapidOCR
    global _rapidocr
    if _rapidocr is None:
        with _detector_lock:
            if _rapidocr is None:
                try:
                    from rapidocr import RapidOCR
                except ImportError as exc:  # pragma: no cover
                    raise EngineUnavailableError("rapidocr is not installed") from exc
                _rapidocr = RapidOCR(params=DETECTOR_PARAMS)  # downloads the model if missing
    return _rapidocr
