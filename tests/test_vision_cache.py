"""The vision cache: answers keyed by content and version, bounded, durable, and used by
`read_image_specs` so an image read before runs no OCR."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import label_bytes
from cumpair.vision import image_specs
from cumpair.vision.cache import (
    VisionCache,
    VisionCacheError,
    cache_stats,
    content_digest,
    ocr_chain_version,
)
from cumpair.vision.ocr_types import OcrOptions, OcrResult, OcrWord


def _ocr(text: str) -> OcrResult:
    box = ((0.0, 0.0), (10.0, 0.0), (10.0, 5.0), (0.0, 5.0))
    return OcrResult(text, 0.91, "tesseract", "gray", (OcrWord(text, 0.91, box),))


def test_answers_survive_reopening_and_are_keyed_by_version(tmp_path):
    digest = content_digest(b"label bytes")
    with VisionCache(tmp_path / "c.sqlite", max_bytes=1 << 20) as cache:
        cache.put_ocr(digest, "v1", _ocr("Weight: 2 kg"))
        cache.put_vector("image-vector", digest, "enc@1", np.arange(4, dtype=np.float32))
    with VisionCache(tmp_path / "c.sqlite") as cache:
        assert cache.get_ocr(digest, "v1") == _ocr("Weight: 2 kg")
        assert cache.get_ocr(digest, "v2") is None  # another chain never reads this answer
        assert cache.get_ocr(content_digest(b"other bytes"), "v1") is None
        vector = cache.get_vector("image-vector", digest, "enc@1", 4)
        np.testing.assert_array_equal(vector, np.arange(4, dtype=np.float32))
        assert cache.get_vector("image-vector", digest, "enc@1", 8) is None  # another size
        assert cache.max_bytes == 1 << 20  # the bound the writer set is recorded


def test_chain_version_names_the_options_that_change_the_answer():
    base = OcrOptions(engines=("tesseract", "rapidocr"))
    assert ocr_chain_version(base) == ocr_chain_version(
        OcrOptions(engines=("tesseract", "rapidocr"))
    )
    assert ocr_chain_version(base) != ocr_chain_version(OcrOptions(engines=("rapidocr",)))
    assert ocr_chain_version(base) != ocr_chain_version(
        OcrOptions(engines=("tesseract", "rapidocr"), min_confidence=0.5)
    )


def test_the_bound_evicts_the_least_recently_used_entries(tmp_path, monkeypatch):
    monkeypatch.setattr("cumpair.vision.cache.EVICT_EVERY", 1)
    with VisionCache(tmp_path / "c.sqlite", max_bytes=10_000) as cache:
        for n in range(5):
            cache.put("k", "v", f"d{n}", bytes(3000))
            if n >= 1:
                assert cache.get("k", "v", "d0") is not None  # d0 kept in use
        stats = cache.stats()
        assert stats.bytes <= 10_000 + 3000  # within one entry of the bound
        assert cache.get("k", "v", "d0") is not None
        assert cache.get("k", "v", "d1") is None  # the oldest unused went first


def test_cache_stats_reports_entries_bytes_and_bound(tmp_path):
    assert cache_stats(tmp_path) is None
    with VisionCache(tmp_path / "vision_cache.sqlite", max_bytes=5 << 20) as cache:
        cache.put("k", "v", "d", bytes(100))
    stats = cache_stats(tmp_path)
    assert (stats.entries, stats.bytes, stats.max_bytes) == (1, 100, 5 << 20)


def test_a_damaged_file_is_a_clear_error(tmp_path):
    path = tmp_path / "vision_cache.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(VisionCacheError, match="delete it"):
        VisionCache(path, max_bytes=0)


@pytest.mark.slow
def test_an_image_read_before_runs_no_ocr_and_yields_the_same_specs(tmp_path, monkeypatch):
    offer = build_catalog(n_products=12, defects_per_kind=0).offers[0]
    label = tmp_path / "label.png"
    label.write_bytes(label_bytes(offer))
    runs: list[object] = []
    real = image_specs.recognize

    def counted(*args, **kwargs):
        runs.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(image_specs, "recognize", counted)
    options = OcrOptions(engines=("tesseract",), max_variants=1)
    with VisionCache(tmp_path / "c.sqlite", max_bytes=0) as cache:
        cold = image_specs.read_image_specs(label, ocr_options=options, cache=cache)
        warm = image_specs.read_image_specs(label, ocr_options=options, cache=cache)
        copy = tmp_path / "same-bytes-other-name.png"
        copy.write_bytes(label.read_bytes())
        again = image_specs.read_image_specs(copy, ocr_options=options, cache=cache)
        other = image_specs.read_image_specs(
            label, ocr_options=OcrOptions(engines=("rapidocr",)), cache=cache
        )
    assert len(runs) == 2  # the first read and the other chain's
    assert not cold.ocr_cached and warm.ocr_cached and again.ocr_cached and not other.ocr_cached
    assert cold.specs.to_dict() == warm.specs.to_dict() == again.specs.to_dict()
    assert cold.specs.weight_g is not None or cold.specs.dimensions_mm  # a label was read


def test_index_stats_reports_the_cache_size_and_bound(tmp_path, capsys):
    from cumpair.cli import main as cumpair_main
    from cumpair.index import ProductStore, StoreOptions

    ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None)).close()
    assert cumpair_main(["index", "stats", "--index", str(tmp_path)]) == 0
    assert "vision cache: none yet" in capsys.readouterr().out
    with VisionCache(tmp_path / "vision_cache.sqlite", max_bytes=5 << 20) as cache:
        cache.put("ocr", "v", "d", bytes(100))
    assert cumpair_main(["index", "stats", "--index", str(tmp_path)]) == 0
    assert "vision cache: 1 entries, 100 B of 5.0 MB" in capsys.readouterr().out
    assert cumpair_main(["index", "stats", "--index", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["vision_cache"]["max_bytes"] == 5 << 20
