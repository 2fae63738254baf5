"""What the crawl holds at once does not grow with the shops it crawls side by side.

`scrapy crawlall` builds one specs stage and one embedding stage per shop; the models they
share bound their own concurrency, so the activations of ONNX runs and the Tesseract APIs in
memory stay at what fills the cores; and the crawl's malloc gives freed big blocks back.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings

from cumpair.embed import load_encoders
from cumpair.embed.base import calls_filling_cores
from cumpair.embed.runtime import OnnxSession
from cumpair.vision.engines import TesseractEngine
from cumpair_scraper.memory import MallocLimits

REPO = Path(__file__).resolve().parent.parent


class _Overlap:
    """Counts how many callers are inside at once (each stays a moment)."""

    def __init__(self) -> None:
        self.inside = self.most = 0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        with self._lock:
            self.inside += 1
            self.most = max(self.most, self.inside)

    def __exit__(self, *exc_info: object) -> None:
        time.sleep(0.2)  # long enough for every other thread to try to get in
        with self._lock:
            self.inside -= 1


def _side_by_side(count: int, work) -> None:
    start = threading.Barrier(count)

    def started() -> None:
        start.wait()
        work()

    threads = [threading.Thread(target=started) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class _RecordingSession:
    def __init__(self, overlap: _Overlap) -> None:
        self.overlap = overlap

    def run(self, outputs, inputs):
        with self.overlap:
            return [inputs]


def test_onnx_runs_of_every_session_together_fill_the_cores_and_no_more():
    text = load_encoders("offline").text
    overlap = _Overlap()
    # Two sessions of one model, as two shops' stages would hold: the bound is the process's.
    sessions = [OnnxSession(text._onnx_path, threads=1) for _ in range(2)]
    for session in sessions:
        session._session = _RecordingSession(overlap)
    _side_by_side(8, lambda: [session.run({}) for session in sessions])
    assert overlap.most == calls_filling_cores(1)


def test_tesseract_keeps_at_most_max_apis_however_many_threads_read():
    engine = TesseractEngine(max_apis=2)
    overlap = _Overlap()
    created = []
    new_api = engine._new_api

    def counted_api():
        created.append(1)
        return new_api()

    engine._new_api = counted_api

    def read() -> None:
        with engine._api(), overlap:
            pass

    _side_by_side(6, read)
    assert overlap.most == 2
    assert len(created) <= 1  # one more than the API made at load


def _resident_left_by_freed_blocks(limits: dict[str, int]) -> float:
    """MB still resident in a fresh process after 64 blocks of 1 MiB were freed (with a small
    block kept between each, as a crawl's other objects are) under the malloc `limits`."""
    code = f"""
        from types import SimpleNamespace
        from scrapy.settings import Settings
        from cumpair_scraper.memory import MallocLimits

        def resident_mb():
            with open("/proc/self/status") as status:
                return int(next(l for l in status if l.startswith("VmRSS")).split()[1]) / 1024

        if {limits!r}:
            MallocLimits.from_crawler(SimpleNamespace(settings=Settings({limits!r})))
        warm = bytearray(b"1") * (1 << 20)
        del warm  # glibc raises its mmap threshold when a mapped block is freed
        before = resident_mb()
        blocks, kept = [], []
        for _ in range(64):
            blocks.append(bytearray(b"1") * (1 << 20))
            kept.append(bytearray(b"1") * 2000)  # malloc'd (pymalloc takes <= 512 bytes)
        del blocks
        print(resident_mb() - before)
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return float(done.stdout.split()[-1])


def test_malloc_limits_give_freed_big_blocks_back():
    limits = {"MALLOC_ARENA_MAX": 2, "MALLOC_MMAP_THRESHOLD": 256 * 1024}
    assert _resident_left_by_freed_blocks(limits) < 8
    assert _resident_left_by_freed_blocks({}) > 32  # glibc's own thresholds keep them


@pytest.mark.parametrize(
    ("limits", "error"),
    [
        ({"MALLOC_ARENA_MAX": 0, "MALLOC_MMAP_THRESHOLD": 0}, NotConfigured),
        ({"MALLOC_ARENA_MAX": -1, "MALLOC_MMAP_THRESHOLD": 0}, ValueError),
    ],
)
def test_malloc_limits_off_or_wrong(limits, error):
    with pytest.raises(error):
        MallocLimits.from_crawler(SimpleNamespace(settings=Settings(limits)))
