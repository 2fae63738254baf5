"""CLIP image+text encoder through open_clip: both towers share one space.

Weights come from a local checkpoint file or an open_clip pretrained tag (downloaded by open_clip
when the machine is online, or already in its cache). `clip_weights_available` answers, without
touching the network, whether loading would work offline; `auto` selection relies on it. Nothing
here imports open_clip (or torch) before a CLIP model is loaded or a weight file is on disk.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cumpair.embed.base import (
    EncoderUnavailable,
    ImageInput,
    default_threads,
    empty_vectors,
    l2_normalize,
)
from cumpair.embed.minilm import _check_texts
from cumpair.embed.runtime import call_slots, set_torch_threads

logger = logging.getLogger(__name__)

DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_PRETRAINED = "laion2b_s34b_b79k"


def register_model_config(path: str | os.PathLike[str]) -> None:
    """Make a custom open_clip architecture (a JSON config file or folder of them) loadable."""
    import open_clip

    if not Path(path).exists():
        raise EncoderUnavailable(f"open_clip model config {path} does not exist")
    open_clip.add_model_config(path)


def clip_weights_available(
    model: str = DEFAULT_CLIP_MODEL,
    pretrained: str | os.PathLike[str] = DEFAULT_CLIP_PRETRAINED,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> bool:
    """True when `pretrained` is an existing file, or a known tag with locally cached weights."""
    if Path(pretrained).is_file():
        return True
    if not _weight_files_cached(cache_dir):
        return False
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg

    if model not in open_clip.list_models():
        return False
    cfg = get_pretrained_cfg(model, str(pretrained))
    if not cfg:
        return False
    if cfg.get("file"):
        return Path(cfg["file"]).is_file()
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(hub)
        filename = filename or "open_clip_pytorch_model.bin"
        candidates = [filename]
        if filename.endswith((".bin", ".pth")):
            candidates.insert(0, filename[:-4] + ".safetensors")
        if filename == "open_clip_pytorch_model.bin":
            candidates.insert(0, "open_clip_model.safetensors")
        cache = None if cache_dir is None else str(cache_dir)
        return any(
            isinstance(try_to_load_from_cache(repo_id, name, cache_dir=cache), str)
            for name in candidates
        )
    url = cfg.get("url", "")
    if url:
        folder = Path(cache_dir) if cache_dir else Path("~/.cache/clip").expanduser()
        return (folder / os.path.basename(url)).is_file()
    return False


# Names of the files open_clip downloads weights into: the hub defaults (HF_WEIGHTS_NAME and its
# safetensors twin), the plain names some hub repos use, and the suffixes of its URL downloads.
_HUB_WEIGHT_FILES = frozenset(
    {
        "open_clip_model.safetensors",
        "open_clip_pytorch_model.bin",
        "pytorch_model.bin",
        "pytorch_model.safetensors",
    }
)
_URL_WEIGHT_SUFFIXES = (".pt", ".pth")


def _weight_files_cached(cache_dir: str | os.PathLike[str] | None) -> bool:
    """False when neither cache open_clip loads tags from holds any weight file at all.

    Answered from the file system alone: the tag -> file table lives in open_clip, whose import
    pulls in torch, torchvision and transformers (seconds and ~0.8 GB), so `auto` selection on a
    machine without CLIP weights must not need it. True only means "look it up in open_clip".
    """
    if cache_dir is None:
        from huggingface_hub.constants import HF_HUB_CACHE

        hub, url_folder = Path(HF_HUB_CACHE), Path("~/.cache/clip").expanduser()
    else:
        hub = url_folder = Path(cache_dir)
    if any(path.name in _HUB_WEIGHT_FILES for path in hub.glob("models--*/snapshots/*/*")):
        return True
    return any(path.suffix in _URL_WEIGHT_SUFFIXES for path in url_folder.glob("*"))


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


class ClipEncoder:
    """open_clip model; encodes images and texts into one space (`shared_space` is True).

    Runs on PyTorch (open_clip's towers vary per architecture; no ONNX export is attempted).
    """

    shared_space = True
    backend = "torch"

    def __init__(
        self,
        model: str = DEFAULT_CLIP_MODEL,
        pretrained: str | os.PathLike[str] = DEFAULT_CLIP_PRETRAINED,
        *,
        threads: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        import open_clip
        import torch

        self.threads = threads or default_threads()
        set_torch_threads(self.threads)
        pretrained = str(pretrained)
        is_file = Path(pretrained).is_file()
        try:
            net, _, preprocess = open_clip.create_model_and_transforms(
                model,
                pretrained=pretrained,
                cache_dir=None if cache_dir is None else str(cache_dir),
                device="cpu",
            )
            tokenizer = open_clip.get_tokenizer(model)
        except Exception as exc:  # corrupt files fail in torch, pickle, safetensors...
            raise EncoderUnavailable(
                f"cannot load CLIP model {model!r} with weights {pretrained!r}: {exc}"
            ) from exc
        self._model = net.eval()
        self._preprocess = preprocess
        self._tokenizer = tokenizer
        self._slots = call_slots(self.threads)
        self._tokenizer_lock = threading.Lock()  # some open_clip tokenizers are not thread-safe
        self.name = f"clip-{model}"
        # A file's identity is its content; a tag names fixed published weights.
        self.version = f"sha256-{_file_digest(Path(pretrained))}" if is_file else pretrained
        with torch.inference_mode():
            self.dim = int(self._model.encode_text(self._tokenizer(["x"])).shape[1])

    def prepare_image(self, image: ImageInput) -> np.ndarray:
        """Decode and preprocess one input; raises `cumpair.vision.images.ImageError` if bad."""
        from cumpair.vision.images import load_image  # Pillow: a text query never decodes a photo

        return self._preprocess(load_image(image)).numpy()

    def embed_prepared(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        if len(pixels) == 0:
            return empty_vectors(self.dim)
        with self._slots, torch.inference_mode():
            features = self._model.encode_image(torch.from_numpy(np.ascontiguousarray(pixels)))
        return l2_normalize(features.float().numpy())

    def encode_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        if not images:
            return empty_vectors(self.dim)
        return self.embed_prepared(np.stack([self.prepare_image(image) for image in images]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = _check_texts(texts)
        if not texts:
            return empty_vectors(self.dim)
        with self._tokenizer_lock:
            tokens = self._tokenizer(texts)
        with self._slots, torch.inference_mode():
            features = self._model.encode_text(tokens)
        return l2_normalize(features.float().numpy())
