"""`cached_onnx`: one export per file, and nothing left behind by an export that was killed."""

from __future__ import annotations

from pathlib import Path

from cumpair.embed.onnx_cache import cached_onnx


def _write_model(tmp: Path) -> None:
    tmp.write_bytes(b"onnx")


def test_export_runs_once_and_lands_under_its_name(tmp_path: Path) -> None:
    path = tmp_path / "models" / "encoder-v1.onnx"
    calls: list[Path] = []

    def export(tmp: Path) -> None:
        calls.append(tmp)
        _write_model(tmp)

    assert cached_onnx(path, export) == path
    assert cached_onnx(path, export) == path
    assert len(calls) == 1
    assert path.read_bytes() == b"onnx"
    assert not list(path.parent.glob("*.tmp"))


def test_a_killed_exports_temporary_file_is_removed_by_the_next_export(tmp_path: Path) -> None:
    path = tmp_path / "encoder-v1.onnx"
    abandoned = tmp_path / "encoder-v1.onnx.k3j2h1.tmp"  # as mkstemp names them
    abandoned.write_bytes(b"half an export")
    other_model = tmp_path / "other-v1.onnx.a1b2c3.tmp"  # another file's export: not ours
    other_model.write_bytes(b"someone else's")

    cached_onnx(path, _write_model)

    assert path.read_bytes() == b"onnx"
    assert not abandoned.exists()
    assert other_model.exists()
