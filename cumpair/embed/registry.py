"""Choose and load the encoders once per process: CLIP when its weights are here, else offline.

`load_encoders` is the one entry point the crawl, the index and the CLI use. It caches what it
builds, so calling it again with the same arguments returns the already-loaded models.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cumpair.embed.base import (
    DEFAULT_MODEL_DIR,
    EncoderInfo,
    EncoderUnavailable,
    ImageEncoder,
    TextEncoder,
    info_of,
)
from cumpair.embed.clip import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED

logger = logging.getLogger(__name__)

Kind = Literal["auto", "offline", "clip"]
KINDS: tuple[str, ...] = ("auto", "offline", "clip")


@dataclass(frozen=True)
class EncoderSet:
    """The encoders one index uses.

    `image` fills the image index and embeds photo queries; `text` fills the text index and
    embeds text queries; `text_to_image` (CLIP only, else None) embeds a text query into the
    image index's space, so a text query can search product photos too.
    """

    kind: Literal["offline", "clip"]
    image: ImageEncoder
    text: TextEncoder
    text_to_image: TextEncoder | None

    @property
    def image_info(self) -> EncoderInfo:
        return info_of(self.image)

    @property
    def text_info(self) -> EncoderInfo:
        return info_of(self.text)

    @property
    def shared_space(self) -> bool:
        """True when text queries can search image vectors (CLIP)."""
        return self.text_to_image is not None

    def describe(self) -> str:
        """One line for logs and `cumpair index stats`."""
        image, text = self.image_info, self.text_info
        backend = getattr(self.image, "backend", "?")
        return (
            f"{self.kind} encoders: image {image.name}@{image.version} ({image.dim}-d, {backend}),"
            f" text {text.name}@{text.version} ({text.dim}-d),"
            f" text-to-image search {'on' if self.shared_space else 'off'}"
        )


_cache: dict[tuple, EncoderSet] = {}
_cache_lock = threading.Lock()


def load_encoders(
    kind: Kind | str = "auto",
    *,
    clip_model: str = DEFAULT_CLIP_MODEL,
    clip_pretrained: str | os.PathLike[str] = DEFAULT_CLIP_PRETRAINED,
    clip_model_config: str | os.PathLike[str] | None = None,
    clip_cache_dir: str | os.PathLike[str] | None = None,
    backend: str = "auto",
    threads: int | None = None,
    model_dir: str | os.PathLike[str] = DEFAULT_MODEL_DIR,
) -> EncoderSet:
    """Load (once per process) the encoders of `kind`.

    * ``offline``: EfficientNet-Lite0 for images and all-MiniLM-L6-v2 for text (shipped weights).
    * ``clip``: open_clip `clip_model` with `clip_pretrained` (a tag or a checkpoint file);
      open_clip downloads a tag's weights if they are not cached and the machine is online.
    * ``auto``: ``clip`` when its weights are present locally, else ``offline``.

    `clip_model_config` registers a custom open_clip architecture (JSON) first. `backend`
    ("auto", "onnx", "torch") and `threads` apply to the offline encoders; ONNX exports are
    written once under `model_dir`, by a child process (torch stays out of this one). Raises
    `EncoderUnavailable` when `kind` cannot be loaded, `EmbedError` when an export fails.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown encoder kind {kind!r}; expected one of {KINDS}")
    key = (
        kind,
        clip_model,
        _normalise_path(clip_pretrained),
        _normalise_path(clip_model_config),
        _normalise_path(clip_cache_dir),
        backend,
        threads,
        _normalise_path(model_dir),
    )
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _load(
                kind,
                clip_model=clip_model,
                clip_pretrained=clip_pretrained,
                clip_model_config=clip_model_config,
                clip_cache_dir=clip_cache_dir,
                backend=backend,
                threads=threads,
                model_dir=model_dir,
            )
        return _cache[key]


def _normalise_path(value: str | os.PathLike[str] | None) -> str | None:
    if value is None:
        return None
    path = Path(value)
    return str(path.resolve()) if path.exists() else str(value)


def _load(kind: str, *, clip_model, clip_pretrained, clip_model_config, clip_cache_dir,
          backend, threads, model_dir) -> EncoderSet:  # fmt: skip
    from cumpair.embed.clip import ClipEncoder, clip_weights_available, register_model_config

    if clip_model_config is not None and kind in ("auto", "clip"):
        register_model_config(clip_model_config)
    if kind == "auto":
        if clip_weights_available(clip_model, clip_pretrained, cache_dir=clip_cache_dir):
            kind = "clip"
        else:
            logger.info(
                "CLIP weights %s/%s not present locally: using the offline encoders",
                clip_model,
                clip_pretrained,
            )
            kind = "offline"
    if kind == "clip":
        clip = ClipEncoder(clip_model, clip_pretrained, threads=threads, cache_dir=clip_cache_dir)
        encoders = EncoderSet(kind="clip", image=clip, text=clip, text_to_image=clip)
    else:
        encoders = _offline(backend=backend, threads=threads, model_dir=model_dir)
    logger.info("loaded %s", encoders.describe())
    return encoders


def _offline(*, backend: str, threads: int | None, model_dir) -> EncoderSet:
    """The offline encoders; on ONNX Runtime, missing exports are written by a child process
    (`onnx_export.export_in_child`), so this process never imports torch."""
    from cumpair.embed.efficientnet import EfficientNetLite0Encoder
    from cumpair.embed.minilm import MiniLMEncoder
    from cumpair.embed.onnx_cache import OnnxExportMissing, exports_elsewhere
    from cumpair.embed.onnx_export import export_in_child

    def build() -> EncoderSet:
        options = {"backend": backend, "threads": threads, "model_dir": model_dir}
        return EncoderSet(
            kind="offline",
            image=EfficientNetLite0Encoder(**options),
            text=MiniLMEncoder(**options),
            text_to_image=None,
        )

    if backend == "torch":
        return build()
    try:
        with exports_elsewhere():
            return build()
    except OnnxExportMissing:
        export_in_child(model_dir)
    with exports_elsewhere():  # a file still missing now is an error, not a second export
        return build()


__all__ = ["KINDS", "EncoderSet", "EncoderUnavailable", "load_encoders"]
