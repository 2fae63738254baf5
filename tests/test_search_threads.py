"""`limit_search_threads`: one-query commands bound FAISS's OpenMP team, serve keeps its own."""

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
