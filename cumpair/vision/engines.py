"""OCR engines behind one small interface, each loaded lazily and once per process.

`get_engine(name)` returns a process-wide singleton; the heavy import (tesserocr, ONNX
Runtime, torch) happens on the first call, under a lock, so importing this module costs
nothing. Engines return words in the coordinates of the image they were given; the chain in
`cumpair.vision.ocr` maps them back and decides which answer to keep.
"""

from __future__ import annotations

import os
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

TESSDATA_DIR = "/usr/share/tesseract-ocr/5/tessdata/"
LANGUAGE_ALIASES = {"en": "eng", "eng": "eng", "english": "eng"}


class EngineUnavailableError(RuntimeError):
    """An engine's library or model files are missing on this machine."""


@dataclass(frozen=True, slots=True)
class RawWord:
    text: str
    confidence: float  # 0..1
    box: np.ndarray  # N x 2 points in the engine's input pixels


class OcrEngine(ABC):
    """One OCR backend. Implementations must be safe to call from several threads."""

    name: str

    def modes(self, text_lines: int) -> tuple[str, ...]:
        """Engine-specific reading modes worth trying, given a rough count of text lines."""
        return ("",)

    @abstractmethod
    def read(
        self, image: np.ndarray, *, mode: str = "", whitelist: str | None = None
    ) -> list[RawWord]:
        """Recognise `image` (H x W x 3 RGB or H x W grey, uint8) into words in reading order."""


class TesseractEngine(OcrEngine):
    """Tesseract 5 in-process via tesserocr (~6x faster than pytesseract's subprocess).

    A `PyTessBaseAPI` is not thread-safe, so a small pool hands each thread its own; at most
    `max_apis` exist (default: one per core), since every thread reading at once would
    otherwise hold one (`scrapy crawlall` runs a specs stage per shop) and reads beyond the
    cores only share them.
    """

    name = "tesseract"

    def __init__(
        self, language: str = "eng", tessdata: str = TESSDATA_DIR, max_apis: int | None = None
    ) -> None:
        try:
            import tesserocr
        except ImportError as exc:  # pragma: no cover - tesserocr is pinned
            raise EngineUnavailableError("tesserocr is not installed") from exc
        self._tesserocr = tesserocr
        self._language = language
        self._tessdata = tessdata
        self._pool: queue.SimpleQueue = queue.SimpleQueue()
        self._pool.put(self._new_api())  # fail now, not on first read, if data is missing
        self._apis = threading.BoundedSemaphore(max_apis or len(os.sched_getaffinity(0)))

    def _new_api(self):  # -> tesserocr.PyTessBaseAPI
        try:
            return self._tesserocr.PyTessBaseAPI(path=self._tessdata, lang=self._language)
        except RuntimeError as exc:
            raise EngineUnavailableError(
                f"Tesseract cannot load language {self._language!r} from {self._tessdata}"
            ) from exc

    @contextmanager
    def _api(self) -> Iterator:
        with self._apis:  # so no more than `max_apis` are ever taken at once
            try:
                api = self._pool.get_nowait()
            except queue.Empty:
                api = self._new_api()
            try:
                yield api
            finally:
                self._pool.put(api)

    def modes(self, text_lines: int) -> tuple[str, ...]:
        if text_lines == 1:  # captchas, banners: a single line, then a single word
            return ("psm7", "psm8")
        return ("psm6", "psm11")  # uniform block (labels), then sparse text

    def read(
        self, image: np.ndarray, *, mode: str = "", whitelist: str | None = None
    ) -> list[RawWord]:
        from PIL import Image

        psm = int(mode[3:]) if mode.startswith("psm") else 6
        words: list[RawWord] = []
        tesserocr = self._tesserocr
        with self._api() as api:
            api.SetPageSegMode(psm)
            api.SetVariable("tessedit_char_whitelist", whitelist or "")
            api.SetImage(Image.fromarray(image))
            api.Recognize()
            if not api.GetUTF8Text().strip():  # the iterator raises on an empty page
                api.Clear()
                return words
            iterator = api.GetIterator()
            level = tesserocr.RIL.WORD
            line_index = -1
            for item in tesserocr.iterate_level(iterator, level):
                text = item.GetUTF8Text(level)
                if not text or not text.strip():
                    continue
                if item.IsAtBeginningOf(tesserocr.RIL.TEXTLINE):
                    line_index += 1
                box = item.BoundingBox(level)
                if box is None:
                    continue
                x1, y1, x2, y2 = box
                points = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)
                words.append(
                    RawWord(text.strip(), max(0.0, item.Confidence(level)) / 100.0, points)
                )
            api.Clear()
        return words


class RapidOcrEngine(OcrEngine):
    """RapidOCR: PP-OCR detection + recognition ONNX models shipped inside the wheel.

    Reports text lines, not words. The tuned parameters come from MODELS.md (no angle
    classifier: product labels are upright; detection capped at 960 px).
    """

    name = "rapidocr"

    def __init__(self) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:  # pragma: no cover
            raise EngineUnavailableError("rapidocr is not installed") from exc
        self._engine = RapidOCR(
            params={
                "Global.log_level": "error",  # "no text found" is an answer, not a warning
                "Global.use_cls": False,
                "Det.limit_type": "max",
                "Det.limit_side_len": 960,
                # On the calling thread alone, as the text gate's detector: ONNX Runtime's own
                # pool (a thread per core, spinning between operators) doubled the CPU of a read
                # beside the crawl's other OCR threads and hid it from `stage/ocr_cpu_s`. 24 demo
                # photos: 3.2-3.4 CPU s against 6.8-7.2 (wall 3.2-3.6 s against 5.5-8.9, load
                # 2-4), the same words.
                "EngineConfig.onnxruntime.intra_op_num_threads": 1,
            }
        )
        self._lock = threading.Lock()  # the pipeline object keeps per-call state

    def read(
        self, image: np.ndarray, *, mode: str = "", whitelist: str | None = None
    ) -> list[RawWord]:
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        from rapidocr.utils.process_img import ResizeImgError

        with self._lock:
            try:
                output = self._engine(image[:, :, ::-1].copy())  # RapidOCR expects BGR like cv2
            except ResizeImgError:  # a strip too thin to scale into its detector (5000 x 30)
                return []  # reads nothing there; the chain's other engines still try it
        if output.txts is None or output.boxes is None:
            return []
        return [
            RawWord(text, float(score), np.asarray(box, dtype=np.float64))
            for text, score, box in zip(output.txts, output.scores, output.boxes, strict=True)
            if text.strip()
        ]


class EasyOcrEngine(OcrEngine):
    """EasyOCR (CRAFT + CRNN in torch) with the offline English weights; downloads disabled."""

    name = "easyocr"

    def __init__(self) -> None:
        try:
            import easyocr
            import easyocr_en_models
        except ImportError as exc:  # pragma: no cover
            raise EngineUnavailableError("easyocr or its offline models are not installed") from exc
        self._reader = easyocr.Reader(
            ["en"],
            gpu=False,
            model_storage_directory=easyocr_en_models.model_dir(),
            download_enabled=False,
            verbose=False,
        )
        self._lock = threading.Lock()

    def read(
        self, image: np.ndarray, *, mode: str = "", whitelist: str | None = None
    ) -> list[RawWord]:
        with self._lock:
            results = self._reader.readtext(image, allowlist=whitelist or None)
        return [
            RawWord(text, float(conf), np.asarray(box, dtype=np.float64))
            for box, text, conf in results
            if text.strip()
        ]


_FACTORIES = {
    "tesseract": TesseractEngine,
    "rapidocr": RapidOcrEngine,
    "easyocr": EasyOcrEngine,
}
ENGINE_NAMES: tuple[str, ...] = tuple(_FACTORIES)

_engines: dict[str, OcrEngine] = {}
_failures: dict[str, EngineUnavailableError] = {}
_load_lock = threading.Lock()


def get_engine(name: str) -> OcrEngine:
    """Return the process-wide engine `name`, loading it on first use (thread-safe).

    Raises `ValueError` for an unknown name and `EngineUnavailableError` (remembered, so a
    broken install is not retried on every image) when it cannot load.
    """
    if name not in _FACTORIES:
        raise ValueError(f"unknown OCR engine {name!r}; choose from {', '.join(ENGINE_NAMES)}")
    engine = _engines.get(name)
    if engine is not None:
        return engine
    with _load_lock:
        if name in _engines:
            return _engines[name]
        if name in _failures:
            raise _failures[name]
        try:
            engine = _FACTORIES[name]()
        except EngineUnavailableError as exc:
            _failures[name] = exc
            raise
        except Exception as exc:  # a model file that fails to load is "unavailable" too
            _failures[name] = EngineUnavailableError(f"{name} failed to load: {exc}")
            raise _failures[name] from exc
        _engines[name] = engine
        return engine


def loaded_engines() -> tuple[str, ...]:
    """Names of the engines loaded so far in this process (for tests and diagnostics)."""
    return tuple(_engines)
