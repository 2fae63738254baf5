"""The encoder contract shared by every backend: what a vector means and how it is checked.

Encoders turn product photos and product text into L2-normalised float32 rows. Nothing here
knows about Scrapy or the index; the index only reads `name`, `version` and `dim`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # Pillow loads with the first photo decoded, not with every text query
    from PIL import Image

#: What an image input may be: a decoded image, its encoded bytes, or a file path.
ImageInput: TypeAlias = "Image.Image | bytes | bytearray | memoryview | str | os.PathLike[str]"

#: Default place for exported ONNX files (relative to the working directory, like the index).
DEFAULT_MODEL_DIR = Path("index_data") / "models"


class EmbedError(Exception):
    """Base class for embedding failures that are the caller's to handle."""


class EncoderUnavailable(EmbedError):
    """The requested encoder cannot be loaded here (missing weights, unknown model name)."""


@dataclass(frozen=True)
class EncoderInfo:
    """Identity of a vector space; an index built with one must refuse vectors of another."""

    name: str
    version: str
    dim: int


@runtime_checkable
class ImageEncoder(Protocol):
    """Maps images to unit vectors of `dim` floats."""

    name: str
    version: str
    dim: int

    def encode_images(self, images: Sequence[ImageInput]) -> np.ndarray: ...

    def prepare_image(self, image: ImageInput) -> np.ndarray:
        """Decode and preprocess one image (raises `ImageError`); safe in any thread."""
        ...

    def embed_prepared(self, pixels: np.ndarray) -> np.ndarray:
        """Embed a stack of `prepare_image` outputs: the model forward alone."""
        ...


@runtime_checkable
class ActivationEncoder(ImageEncoder, Protocol):
    """An image encoder that also says where in a photo its network sees the most: what a
    photo query crops its product view from (`cumpair.embed.query`)."""

    def embed_with_activation(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`embed_prepared`'s vectors and each image's channel-summed last feature map."""
        ...


@runtime_checkable
class FeatureMapEncoder(ActivationEncoder, Protocol):
    """An activation encoder that also gives its whole last feature map (channels x rows x
    cols per image), from which a photo query pools the vector of part of its shot."""

    def embed_with_feature_map(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`embed_prepared`'s vectors (one view per image) and each image's feature map."""
        ...


@runtime_checkable
class TextEncoder(Protocol):
    """Maps strings to unit vectors of `dim` floats."""

    name: str
    version: str
    dim: int

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def info_of(encoder: ImageEncoder | TextEncoder) -> EncoderInfo:
    """The identity record the index stores beside its vectors."""
    return EncoderInfo(name=encoder.name, version=encoder.version, dim=encoder.dim)


def default_threads() -> int:
    """Inference threads when none are configured: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def calls_filling_cores(threads: int) -> int:
    """How many model calls of `threads` threads each fill the cores without oversubscribing
    them: one for a call using every core, one per core for single-threaded calls."""
    return max(1, default_threads() // threads)


def l2_normalize(rows: np.ndarray) -> np.ndarray:
    """Unit-length float32 rows, so inner product equals cosine similarity in the index.

    An all-zero row stays zero rather than becoming NaN.
    """
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {rows.shape}")
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return np.ascontiguousarray(rows / norms, dtype=np.float32)


def empty_vectors(dim: int) -> np.ndarray:
    """The (0, dim) result of encoding an empty list."""
    return np.zeros((0, dim), dtype=np.float32)
