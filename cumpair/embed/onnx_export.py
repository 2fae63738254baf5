"""Export the offline encoders' ONNX models in a process of their own, which then exits.

The export needs PyTorch (about 0.7 GB resident once imported, never given back); the crawl,
the index and the CLI only run the exported files on ONNX Runtime. So `load_encoders` runs
the export here, in a child interpreter, the first time a model directory lacks the files, and
`scripts/install.sh` runs it once for the default directory:

    python3 -m cumpair.embed.onnx_export --model-dir index_data/models
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from cumpair.embed.base import DEFAULT_MODEL_DIR, EmbedError

logger = logging.getLogger(__name__)

# Generous: the two exports take about 30 s on two idle cores, minutes on loaded ones.
EXPORT_TIMEOUT_S = 1800.0


def export_offline_models(model_dir: str | os.PathLike[str]) -> None:
    """Write both offline encoders' ONNX files under `model_dir` (here, in this process);
    files already there are kept. Raises `EncoderUnavailable` without the weights and
    `EmbedError` when an export fails its check against PyTorch."""
    from cumpair.embed.efficientnet import EfficientNetLite0Encoder
    from cumpair.embed.minilm import MiniLMEncoder

    EfficientNetLite0Encoder(backend="onnx", threads=1, model_dir=model_dir)
    MiniLMEncoder(backend="onnx", threads=1, model_dir=model_dir)


def export_in_child(
    model_dir: str | os.PathLike[str], *, timeout: float = EXPORT_TIMEOUT_S
) -> None:
    """Run `export_offline_models(model_dir)` in a child interpreter and wait for it.

    The caller never imports torch. Raises `EmbedError` with the child's last output when it
    fails or runs past `timeout` seconds.
    """
    target = Path(model_dir).resolve()
    package_root = str(Path(__file__).resolve().parents[2])  # the child imports this code
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    logger.info("exporting the offline encoders' ONNX models to %s in a child process", target)
    argv = [sys.executable, "-m", __name__, "--model-dir", str(target)]
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        message = f"exporting the ONNX models to {target} took over {timeout:.0f} s"
        raise EmbedError(message) from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise EmbedError(f"exporting the ONNX models to {target} failed: " + " | ".join(tail))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=DEFAULT_MODEL_DIR,
        help=f"where the ONNX files go (default: {DEFAULT_MODEL_DIR})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    export_offline_models(args.model_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
