"""One set of the offline encoders' ONNX exports for the tests' crawls, indexers and ingests.

A crawl (or `cumpair indexer`, `cumpair ingest`) whose data directory has no ``models/`` first
exports both ONNX models there, in a child process that imports PyTorch: 17 CPU s, 43 s wall at
load 10, in each such test. Tests that are not about that export link ``models/`` to the folder
`scripts/install.sh` exports into (index_data/models) and so start where an installed machine
starts. The export itself stays tested: test_embed_offline.py, test_startup_imports.py and the
first crawl of test_crawl.py (an operator's first crawl into a fresh INDEX_DATA_DIR).
"""

from __future__ import annotations

from pathlib import Path

from cumpair.embed.base import DEFAULT_MODEL_DIR

ROOT = Path(__file__).resolve().parents[1]
INSTALLED_MODELS = ROOT / DEFAULT_MODEL_DIR


def with_installed_models(data_dir: str | Path) -> Path:
    """`data_dir` (made if missing) with ``models/`` linked to the installed exports (kept if
    there already); returns `data_dir`. Files missing there are exported there by the first
    process that needs them (under the export's file lock), then shared."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    INSTALLED_MODELS.mkdir(parents=True, exist_ok=True)
    models = data_dir / "models"
    if not models.is_symlink() and not models.exists():
        models.symlink_to(INSTALLED_MODELS.resolve(), target_is_directory=True)
    return data_dir
