"""Export a PyTorch module to ONNX once, atomically, and reuse the file afterwards.

Several crawler processes may start at the same time; a file lock makes exactly one of them
export while the others wait, and the export lands under its final name only when complete.
Inside `exports_elsewhere()` a missing file raises `OnnxExportMissing` instead: the caller
exports in another process (`cumpair.embed.onnx_export`) and keeps torch out of its own.
An export killed outright (SIGKILL, out of memory) cannot remove its temporary file; the next
exporter, holding the same lock, removes what such a run left.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from cumpair.embed.base import EmbedError

logger = logging.getLogger(__name__)

_exports_elsewhere: ContextVar[bool] = ContextVar("exports_elsewhere", default=False)


class OnnxExportMissing(EmbedError):
    """An ONNX file is not there and this code runs under `exports_elsewhere()`."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"ONNX model {path} is not exported yet")
        self.path = path


@contextmanager
def exports_elsewhere() -> Iterator[None]:
    """Within this block (this thread or task), `cached_onnx` raises `OnnxExportMissing`
    rather than run an export (which would import torch into this process)."""
    token = _exports_elsewhere.set(True)
    try:
        yield
    finally:
        _exports_elsewhere.reset(token)


def cached_onnx(path: Path, export: Callable[[Path], None], *, lock_timeout: float = 600) -> Path:
    """Return `path`, calling `export(tmp_path)` first if it does not exist yet.

    `export` writes a complete ONNX file to the temporary path it is given (and may check it);
    the file is then renamed into place, so a reader never sees a half-written model.
    """
    if path.is_file():
        return path
    if _exports_elsewhere.get():
        raise OnnxExportMissing(path)
    from filelock import FileLock  # an export's: a query finds the file and takes none

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=lock_timeout):
        if path.is_file():  # another process exported while we waited
            return path
        _remove_abandoned_exports(path)
        fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            logger.info("exporting ONNX model to %s (once; reused afterwards)", path)
            export(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def _remove_abandoned_exports(path: Path) -> None:
    """Delete the temporary files of earlier exports of `path` that never finished.

    Called under the export lock, so no live export owns one of them: each is what a killed
    run left (about 100 MB for the text model), never to be renamed into place.
    """
    for leftover in path.parent.glob(path.name + ".*.tmp"):
        logger.info("removing %s, left by an export that did not finish", leftover)
        leftover.unlink(missing_ok=True)
