"""Inference runtimes shared by the encoders: ONNX Runtime sessions and PyTorch thread setup.

Threads are always set explicitly: the defaults of both runtimes oversubscribe a small shared
machine (ONNX Runtime spins one thread per core per session, torch uses every core). For the
same reason the ONNX runs of one process, whichever session and caller, are bounded to the
calls that fill the cores (`run_slots`): `scrapy crawlall` gives each shop its own embedding
stage, and each run holds a whole batch's activations.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Literal

import numpy as np

from cumpair.embed.base import EmbedError, calls_filling_cores

logger = logging.getLogger(__name__)

Backend = Literal["onnx", "torch"]
BACKENDS: tuple[str, ...] = ("auto", "onnx", "torch")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown inference backend {backend!r}; expected one of {BACKENDS}")


def set_torch_threads(threads: int) -> None:
    """Set torch's intra-op threads (process-wide: torch has no per-model setting)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def call_slots(threads: int) -> threading.Semaphore:
    """Bounds the PyTorch calls of `threads` threads each running at once to
    `calls_filling_cores(threads)`.

    PyTorch starts a thread team per calling thread, so unbounded concurrent calls would
    oversubscribe the cores; a plain lock would instead serialise single-threaded models that
    the crawl's embedding stage runs side by side (`BatchEmbedder` workers).
    """
    return threading.Semaphore(calls_filling_cores(threads))


_run_slots: dict[int, threading.Semaphore] = {}
_run_slots_lock = threading.Lock()


def run_slots(threads: int) -> threading.Semaphore:
    """The process-wide bound on ONNX runs of `threads` threads each running at once:
    `calls_filling_cores(threads)` (one per core for single-threaded runs). More runs side by
    side would only share the cores, each holding its batch's activations meanwhile (four
    shops' embedding stages, two model threads each, ran eight at once)."""
    with _run_slots_lock:
        if threads not in _run_slots:
            _run_slots[threads] = threading.Semaphore(calls_filling_cores(threads))
        return _run_slots[threads]


class OnnxSession:
    """One ONNX Runtime session on the CPU with a fixed thread count.

    `run` is safe to call from several threads at once (ONNX Runtime guarantees it); the runs
    of the process wait for one of its `run_slots`.
    """

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads sleep instead of spinning: on a small machine the spinning
        # threads take the cores that the crawl's other threads (photo preparation, the
        # reactor) need; bench/bench_embed.py measured the stage 0.71 -> 0.82-0.90 of the raw
        # forward with it off, and the raw forward itself no slower on 2 shared cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # No memory arena: it keeps the largest batch's activations (rounded up to powers of
        # two) for the life of the session. 128 crawl items through the embedding stage
        # (batches of 32, two model threads) left 1.0 GB resident with it, 0.4 GB without
        # (peak 0.8 GB), at 3.7 s per 64 items against 3.5 s with it (6 rounds each, 2 shared
        # cores at load 8).
        options.enable_cpu_mem_arena = False
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EmbedError(f"cannot open ONNX model {path}: {exc}") from exc
        self.input_names = [item.name for item in self._session.get_inputs()]
        self.path = path
        self._slots = run_slots(threads)

    def config(self, key: str) -> str:
        """A session configuration entry in effect (e.g. "session.intra_op.allow_spinning")."""
        return self._session.get_session_options().get_session_config_entry(key)

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        with self._slots:
            return self._session.run(None, inputs)[0]
