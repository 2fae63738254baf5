"""FAISS's OpenMP threads: one-query commands and the crawl use one, serve keeps its own."""

from __future__ import annotations

import faiss
import pytest

from cumpair.search.cli import limit_search_threads


@pytest.fixture
def restore_threads():
    before = faiss.omp_get_max_threads()
    yield
    faiss.omp_set_num_threads(before)


def test_the_default_applies_when_the_setting_is_absent(monkeypatch, restore_threads):
    monkeypatch.delenv("CUMPAIR_SEARCH_THREADS", raising=False)
    faiss.omp_set_num_threads(2)
    limit_search_threads(1)
    assert faiss.omp_get_max_threads() == 1


def test_the_setting_wins_and_zero_leaves_faiss_alone(monkeypatch, restore_threads):
    faiss.omp_set_num_threads(2)
    monkeypatch.setenv("CUMPAIR_SEARCH_THREADS", "0")
    limit_search_threads(1)
    assert faiss.omp_get_max_threads() == 2
    monkeypatch.setenv("CUMPAIR_SEARCH_THREADS", "3")
    limit_search_threads(1)
    assert faiss.omp_get_max_threads() == 3


@pytest.mark.parametrize("text", ["two", "-1"])
def test_a_bad_setting_is_a_clear_error(monkeypatch, restore_threads, text):
    monkeypatch.setenv("CUMPAIR_SEARCH_THREADS", text)
    with pytest.raises(SystemExit, match="CUMPAIR_SEARCH_THREADS"):
        limit_search_threads(1)


class _Stop(Exception):
    """Raised in place of the encoders' load: the pipeline's thread choice is made before it."""


def _index_pipeline(monkeypatch, tmp_path, **settings):
    from scrapy.utils.test import get_crawler

    import cumpair_scraper.pipelines.index as index_pipeline

    def stop(_settings):
        raise _Stop

    monkeypatch.setattr(index_pipeline, "encoders_from_settings", stop)
    values = {"INDEX_ENABLED": True, "INDEX_DATA_DIR": str(tmp_path), "INDEX_WORKERS": 1}
    values.update(settings)
    return index_pipeline.IndexPipeline.from_crawler(get_crawler(settings_dict=values))


def test_the_crawl_searches_on_one_thread_unless_set(monkeypatch, tmp_path, restore_threads):
    faiss.omp_set_num_threads(2)
    with pytest.raises(_Stop):
        _index_pipeline(monkeypatch, tmp_path)
    assert faiss.omp_get_max_threads() == 1
    faiss.omp_set_num_threads(2)
    with pytest.raises(_Stop):
        _index_pipeline(monkeypatch, tmp_path, CUMPAIR_SEARCH_THREADS=0)
    assert faiss.omp_get_max_threads() == 2
    with pytest.raises(ValueError, match="CUMPAIR_SEARCH_THREADS"):
        _index_pipeline(monkeypatch, tmp_path, CUMPAIR_SEARCH_THREADS="two")
