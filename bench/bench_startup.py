"""Start-up of the commands people run from scripts: wall time and peak RSS beside a baseline.

Each command runs in a fresh interpreter (`sys.executable`, so a pyenv shim's own start-up is
not counted), several times; the figures are the median wall time and the largest peak RSS
(the child's own `ru_maxrss`, from `os.wait4`), with the least CPU time (user + system) of the
runs beside the wall time: on a shared machine the wall time measures the other load as much as
the command. Baselines, from the same run:

* `search_index.py --text` / `--image`: a Python process that opens the same SQLite database and
  FAISS index file and runs the same vector search with the ONNX encoder (already exported),
  importing only that (numpy, faiss, onnxruntime, the encoder module); `--gtin`: the issue's
  baseline read literally, the same process opening the SQLite database and each space's FAISS
  file and looking the GTIN up, and beside it the lookup alone in a bare interpreter (SQLite
  only), which no command of a package with its own modules and argument parsing can match.
* `cumpair --help`: the interpreter starting and importing argparse.
* `scrapy list`: a bare `scrapy version` outside any project (Scrapy's own start-up, which the
  issue's 0.5 s bounds too).
* the crawl of the four demo shops (`scrapy crawlall`, every pipeline, served by this process on
  a spare port): the bare crawl, the same crawl with the specs and index pipelines off (photos
  still downloaded). One run of each (minutes); the crawl's resident set is sampled every 0.2 s
  (`/proc/PID/status`), and where it peaks, `/proc/PID/smaps` says what holds it (anonymous
  memory, each big native library's code). Then a fresh process loads the crawl's parts one by
  one with its settings (Scrapy and the project, the encoders, the ONNX sessions, the OCR
  engines, the store, the regroup at close, a batch per model thread and a read per specs worker
  of every shop at once) and prints what each adds and its transient peak; the rest of the peak
  is what is in flight. `--crawl-products 10000 --crawl-seconds 600` crawls a 10^4-product
  catalog for ten minutes (then kills it: a prefix) and prints its peak per fifth of that
  time, flat when every queue between stages is bounded.

Below each row, each target of the issue beside the figure it bounds (ratios of CPU time).

The searches run on a small demo store built first (the demo catalog's real photos and texts,
the offline encoders), in a temporary directory, with no CLIP weights reachable (a temporary
HOME), so `auto` selects the offline encoders as it does on a fresh machine. Then, per command,
the heaviest top-level imports (`python -X importtime`) show what it loads; torch, open_clip,
torchvision, transformers or easyocr there is a bug while the offline encoders are selected.
"imported, never called" lists the packages (ours by sub-package) the command imports but
whose functions it never calls once imports are done (a profile hook), with their import time:
what a lazier import would save.

    python3 bench/bench_startup.py              # 3 runs of each (about a minute on 2 cores)
    python3 bench/bench_startup.py --runs 5

The issue's targets: text and GTIN queries <= 1.0 s and <= 400 MB, within 1.5x of the baseline;
photo queries <= 1.5 s with the model load; `cumpair --help` and `scrapy list` <= 0.5 s.

Measured (2026-12-01, 2 shared cores at load 0.6-0.8, 3 runs; baseline, then ours before ->
after the sub-command registry and the ONNX sessions opened on first use):

    search --text            0.53 s 224 MB | 0.90 s 291 MB -> 0.90 s 260 MB
    search --gtin            0.06 s  16 MB | 0.33 s  61 MB -> 0.37 s  61 MB
    search --image           0.39 s 159 MB | 1.53 s 375 MB -> 1.56 s 276 MB
    search --image --no-ocr  0.34 s 154 MB | 0.88 s 314 MB -> 0.65 s 222 MB
    cumpair --help           0.04 s  16 MB | 1.44 s 147 MB -> 0.07 s  16 MB
    scrapy list              0.40 s  59 MB | 0.99 s 108 MB -> 1.01 s 108 MB

Then (2026-12-01, load 17, 5 runs; least CPU seconds, which the load inflates less than the
wall time; baseline | ours; `scrapy list` beside a bare `scrapy version`), with --gtin and
`history` opening no vector space and no Pillow, the MiniLM tokenizer read on first use and
`cumpair.alerts` loaded lazily by the settings:

    search --text            0.70 cpu 226 MB | 0.92 cpu 262 MB  1.3x
    search --gtin            0.06 cpu  40 MB | 0.52 cpu  58 MB  8.9x (numpy, faiss: never called)
    search --image           0.58 cpu 159 MB | 1.98 cpu 276 MB  3.4x (RapidOCR's own imports)
    search --image --no-ocr  0.48 cpu 162 MB | 0.68 cpu 173 MB  1.4x
    cumpair --help           0.07 cpu  40 MB | 0.10 cpu  40 MB  1.5x
    scrapy list              0.68 cpu  69 MB | 0.59 cpu  70 MB  0.9x

Then (2026-12-02, load 22, 5 runs; least CPU seconds), with --gtin and `history` reading the
store's rows alone (`OfferRows`: no numpy, FAISS, matching or filelock imported) and a photo
query OCR'd only past the text gate; --gtin beside the issue's baseline read literally (SQLite
and the FAISS files opened) and beside the SQLite lookup alone:

    search --text            1.19 cpu 226 MB | 1.84 cpu 261 MB  1.5x (cv2 since left out)
    search --gtin            0.46 cpu  44 MB | 0.39 cpu  39 MB  0.8x; beside SQLite alone
                             0.12 cpu: 3.2x (imported, never called: none)
    search --image           0.93 cpu 161 MB | 3.31 cpu 219 MB  3.5x (RapidOCR's own import:
                             OmegaConf parses its 85 KB model table twice)
    search --image --no-ocr  0.89 cpu 161 MB | 1.23 cpu 170 MB  1.4x
    cumpair --help           0.09 cpu  39 MB | 0.15 cpu  39 MB  1.7x (0.52 s wall)
    scrapy list              1.30 cpu  68 MB | 1.12 cpu  69 MB  0.9x (beside `scrapy version`)

Then (2026-12-02 05:32, load 10, 5 runs, high priority through the shared lock with the
session's autogroup at nice -10: the kernel shares the cores between sessions first, so a plain
`nice -n -10` bought nothing here; wall | least CPU), with text queries importing no Pillow
(the image encoder and the embedder's package decode photos on first use):

    search --text            0.88 s 0.66 cpu 222 MB | 1.23 s 0.85 cpu 231 MB  1.3x (CPU)
    search --gtin            0.35 s 0.30 cpu  44 MB | 0.24 s 0.23 cpu  34 MB  0.8x
    search --image           0.64 s 0.49 cpu 160 MB | 2.04 s 1.74 cpu 216 MB  3.5x
    search --image --no-ocr  0.70 s 0.65 cpu 161 MB | 1.08 s 1.03 cpu 172 MB  1.6x
    cumpair --help           0.07 s 0.06 cpu  34 MB | 0.11 s 0.11 cpu  34 MB  1.8x
    scrapy list              0.88 s 0.78 cpu  69 MB | 1.12 s 1.01 cpu  70 MB  1.3x (1.0-1.1x in
                             three more pairs at load 20: both pay itemadapter's pydantic import)

The photo query's OCR costs what RapidOCR's import costs: the text gate finds no line in the
demo photo, so no OCR engine loads, yet `import rapidocr.main` takes 0.88 CPU s beyond numpy,
OpenCV and ONNX Runtime, 0.72 of it two OmegaConf loads of its 85 KB model table at import
(`inference_engine/base.py`'s `InferSession.model_info` and `utils/model_resolver.py`, RapidOCR
3.10.0, the newest). Every entry point pays them (the detector's own package,
`rapidocr.ch_ppocr_det`, imports the same base: 0.1 s less), explicit params cannot skip an
import, and loading the gate on a thread while the photo is embedded saved nothing (the import
holds the GIL: embed + gate 1.7-2.0 s wall either way, three runs each).

Then (2026-12-02 17:11, load 7, 5 runs through the lock), with bytecode caches (until then every
run compiled the project's modules: PYTHONDONTWRITEBYTECODE is set here), no filelock in a
read-only query, and the text gate running RapidOCR's detection model itself
(`cumpair/vision/text_detector.py`: the same boxes, no `import rapidocr`); `scrapy list` beside
a bare `scrapy startproject` project's `scrapy list` (wall | least CPU):

    search --text            0.48 s 0.43 cpu 220 MB | 0.63 s 0.56 cpu 230 MB  1.3x (CPU)
    search --gtin            0.21 s 0.21 cpu  44 MB | 0.10 s 0.10 cpu  36 MB  0.4x
    search --image           0.36 s 0.35 cpu 155 MB | 0.59 s 0.50 cpu 195 MB  1.4x (was 3.5x)
    search --image --no-ocr  0.52 s 0.49 cpu 158 MB | 0.72 s 0.60 cpu 169 MB  1.2x
    cumpair --help           0.05 s 0.04 cpu  36 MB | 0.09 s 0.07 cpu  36 MB  1.7x
    scrapy list              0.63 s 0.57 cpu  68 MB | 0.52 s 0.44 cpu  69 MB  0.8x

`scrapy list` is held to 1.2x the bare project's (SCRAPY_LIST_RATIO): what it imports beyond
that project's is the settings and spiders; Scrapy's own (Twisted, pydantic through
itemadapter, cryptography) is what a bare project pays too and what misses 0.5 s under load.

The crawl of the four demo shops (2026-12-01, one run each, 2 shared cores at load 20-40, so
wall times are not comparable; the bare crawl peaked at 221-222 MB in every run):

    first crawl, the ONNX export in the crawl (torch)     2091 MB
    exports present (torch never loaded), no bounds       1315 MB per fifth: 858 920 997 1070 1315
    + run slots, Tesseract APIs, malloc limits             597 MB per fifth: 415 581 582 580 568

The issue's crawl target: <= 1.2 GB peak on the demo shops, at 10^4 products <= 10% above it.
At 10^4 products the crawl held every page it had fetched until its item was through OCR and
embedding: Scrapy's scraper slot stops fetching at 5 MB of page bodies, thousands of demo pages,
and each page kept CONCURRENT_ITEMS + 1 asyncio tasks (86 KB at Scrapy's 100). A 360 s run
(load 15-20) held 1069 pages and 90k tasks at 350 s, rising 3 pages a second, 719 MB and rising
(the last session's 420 s run: 458 617 671 716 747 MB per fifth). With PAGES_IN_FLIGHT_MAX (32
pages per shop, cumpair_scraper/inflight.py) and CONCURRENT_ITEMS = 4 (2026-12-01, load 8-16,
one run of each):

    demo shops, every pipeline     616 MB per fifth: 572 580 581 596 574; 228 of 228 items
    10^4 products, first 480 s     627 MB per fifth: 566 624 599 623 618; 174 items (bare: 1590)

The 10^4 prefix is 2% above the demo crawl. Again for 1800 s (2026-12-02 05:21-06:23, normal
priority, load 10-39; the window also held the bare crawl of the same catalog; the same demo
shops' first crawl with every pipeline peaked at 585 MB in bench_crawl that hour):

    10^4 products, first 1800 s    624 MB per fifth: 578 618 617 609 594; 427 items (bare: 6452)

7% above that demo crawl, flat after the first fifth. A whole 10^4 crawl (about 29k items) takes
hours at this rate, and adds what grows with the offers indexed: the FAISS vectors (6.6 KB an
offer with both spaces), the regroup at close (72 MB at the demo's 228 offers) and Scrapy's media
pipeline's record of each photo downloaded.
Parts loaded one by one (the accounting lines, with the malloc limits): python 14 MB, Scrapy +
the project 133, encoders 13, ONNX sessions 136 (+44 transient), OCR engines 51, store 4,
regroup 69, two batch-32 image runs at once +429 transient, eight OCR reads +20.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cumpair.embed.base import DEFAULT_MODEL_DIR  # noqa: E402
from cumpair_scraper.shopconfig import bundled_configs_on_port  # noqa: E402

HEAVY = ("torch", "open_clip", "torchvision", "transformers", "easyocr")
# `scrapy list` beside a bare project's (CPU time): the issue's 0.5 s is below what Scrapy
# itself takes on a loaded 2-core machine (0.88 s, 2026-12-02), so the command is held to
# Scrapy's own start-up plus a fifth for the project's settings and spiders.
SCRAPY_LIST_RATIO = 1.2
OURS = ("cumpair", "cumpair_scraper", "captcha_server")

# The baseline search: what `search_index.py` must at least do, and nothing else.
_BASELINE_VECTOR = """
import glob, sqlite3, sys
import faiss, numpy as np
index_dir, space, query = sys.argv[1:4]
if space == "text":
    from cumpair.embed.minilm import MiniLMEncoder
    vector = MiniLMEncoder(backend="onnx").encode_texts([query])
else:
    from cumpair.embed.efficientnet import EfficientNetLite0Encoder
    vector = EfficientNetLite0Encoder(backend="onnx").encode_images([query])
index = faiss.read_index(sorted(glob.glob(f"{index_dir}/{space}.g*.faiss"))[-1])
_, ids = index.search(np.ascontiguousarray(vector, dtype=np.float32), 20)
db = sqlite3.connect(f"file:{index_dir}/meta.sqlite?mode=ro", uri=True)
marks = ",".join("?" * len(ids[0]))
rows = db.execute(
    f"SELECT o.title, o.price FROM vectors v JOIN offers o ON o.id = v.offer_id"
    f" WHERE v.space = ? AND v.vector_id IN ({marks})", [space, *map(int, ids[0])]
).fetchall()
print(len(rows))
"""
# The issue's GTIN baseline: the process that opens the same SQLite database and FAISS index
# files (each space's newest, as the store held them) and looks the GTIN up.
_BASELINE_GTIN_ISSUE = """
import glob, sqlite3, sys
import faiss
index_dir, gtin = sys.argv[1:3]
for space in ("image", "text"):
    faiss.read_index(sorted(glob.glob(f"{index_dir}/{space}.g*.faiss"))[-1])
db = sqlite3.connect(f"file:{index_dir}/meta.sqlite?mode=ro", uri=True)
print(db.execute("SELECT title, price FROM offers WHERE gtin = ?", [gtin]).fetchall())
"""
# The lean one: the SQLite lookup alone, in a bare interpreter.
_BASELINE_GTIN = """
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}/meta.sqlite?mode=ro", uri=True)
print(db.execute("SELECT title, price FROM offers WHERE gtin = ?", [sys.argv[2]]).fetchall())
"""


@dataclass
class Figure:
    wall_s: float
    cpu_s: float  # user + system, the least of the runs: what a busy machine inflates least
    peak_mb: float


def _figures(figure: Figure) -> str:
    return f"{figure.wall_s:6.2f} s {figure.cpu_s:5.2f} cpu {figure.peak_mb:4.0f} MB"


def _ratios(ours: Figure, base: Figure) -> str:
    return (
        f"{ours.wall_s / base.wall_s:4.1f}x {ours.cpu_s / base.cpu_s:4.1f}x"
        f" {ours.peak_mb / base.peak_mb:4.1f}x"
    )


@dataclass
class Baseline:
    label: str
    argv: list[str]
    cwd: Path = REPO


@dataclass
class Case:
    """A command, its baselines (the first is the issue's) and the issue's targets for it."""

    name: str
    argv: list[str]
    baselines: list[Baseline]
    max_wall_s: float
    max_mb: float | None = None
    max_ratio: float | None = None

    def verdict(self, ours: Figure, base: Figure) -> str:
        """Each target beside the figure it bounds. The ratio is of CPU time: on a shared
        machine the wall times of the two processes measure the other load as well."""
        parts = [f"<= {self.max_wall_s:g} s: {_met(ours.wall_s <= self.max_wall_s)}"]
        if self.max_mb is not None:
            parts.append(f"<= {self.max_mb:g} MB: {_met(ours.peak_mb <= self.max_mb)}")
        if self.max_ratio is not None:
            ratio = ours.cpu_s / base.cpu_s
            parts.append(f"<= {self.max_ratio:g}x (CPU): {_met(ratio <= self.max_ratio)}")
        return "targets: " + ", ".join(parts)


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def measure(argv: list[str], env: dict[str, str], runs: int, cwd: Path = REPO) -> Figure:
    """Median wall time, least CPU time and largest peak RSS of `runs` runs of `argv` in `cwd`
    (output discarded), after one run that is not counted (it writes the bytecode caches)."""
    walls, cpus, peaks = [], [], []
    for run in range(runs + 1):  # the first writes the bytecode caches: not counted
        start = time.perf_counter()
        child = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(child.pid, 0)
        walls.append(time.perf_counter() - start)
        child.returncode = os.waitstatus_to_exitcode(status)
        error = child.stderr.read().decode(errors="replace")
        child.stderr.close()
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({child.returncode}):\n{error}")
        if run:
            cpus.append(usage.ru_utime + usage.ru_stime)
            peaks.append(usage.ru_maxrss / 1024)  # KiB on Linux
        else:
            walls.pop()
    return Figure(statistics.median(walls), min(cpus), max(peaks))


def _package(module: str) -> str:
    """What the listings count: a third-party package, or a sub-package of ours."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] in OURS else parts[0]


def import_times(argv: list[str], env: dict[str, str]) -> dict[str, int]:
    """Microseconds each package's modules took to import (their own time) in `argv`."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        cwd=REPO, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    totals: dict[str, int] = {}
    for line in done.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        package = _package(fields[2].strip())
        totals[package] = totals.get(package, 0) + int(fields[0])
    return totals


def heaviest_imports(totals: dict[str, int], top: int = 6) -> list[str]:
    """The packages whose modules took the longest to import."""
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return [f"{name} {us / 1e6:.2f}s" + (" (!)" if name in HEAVY else "") for name, us in ranked]


# Runs a command (`-m module args` or `script args`) with a profile hook that records which
# packages had a function called outside of any import (a module's top-level code and what it
# calls count as importing); prints the packages imported and the ones used, as JSON.
_USAGE = """
import json, runpy, sys, threading
imported_before = set(sys.modules)
out, argv = sys.argv[1], sys.argv[2:]
local, used = threading.local(), set()

def hook(frame, event, arg):
    depth, module = getattr(local, "depth", 0), frame.f_globals.get("__name__")
    if frame.f_code.co_name == "<module>" and module != "__main__":  # the command's own runs
        local.depth = depth + (1 if event == "call" else -1 if event == "return" else 0)
    elif depth == 0 and event in ("call", "c_call"):
        name = module if event == "call" else getattr(arg, "__module__", None)
        if isinstance(name, str):
            used.add(name)

sys.argv = argv[1:] if argv[0] == "-m" else argv
threading.setprofile(hook)
sys.setprofile(hook)
try:
    if argv[0] == "-m":
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(argv[0], run_name="__main__")
except SystemExit:
    pass
finally:
    sys.setprofile(None)
    threading.setprofile(None)
imported = sorted(set(sys.modules) - imported_before)
with open(out, "w") as result:
    json.dump({"imported": imported, "used": sorted(used)}, result)
"""


def unused_imports(
    argv: list[str], env: dict[str, str], times: dict[str, int], top: int = 6
) -> str:
    """The packages `argv` imports but never calls into outside imports, slowest first."""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        subprocess.run(
            [argv[0], "-c", _USAGE, result.name, *argv[1:]],
            cwd=REPO, env=env, capture_output=True, check=True,
        )  # fmt: skip
        usage = json.loads(Path(result.name).read_text())
    stdlib = sys.stdlib_module_names
    used = {_package(name) for name in usage["used"]}
    unused = {
        _package(name) for name in usage["imported"] if name.split(".")[0] not in stdlib
    } - used
    costly = [name for name in unused if times.get(name, 0) >= 5000]  # 5 ms and more
    ranked = sorted(costly, key=lambda name: -times[name])[:top]
    return ", ".join(f"{name} {times[name] / 1e6:.2f}s" for name in ranked) or "none"


# The accounting child: the crawl's parts loaded one by one in a fresh interpreter with the
# crawl's settings; each line is (part, MB resident after it, MB of peak above that).
_ACCOUNT = """
import json, sys, threading
from pathlib import Path

def status(key):
    with open("/proc/self/status") as lines:
        return int(next(l for l in lines if l.startswith(key)).split()[1]) / 1024

def step(name, work):
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # the peak (VmHWM) restarts from the resident set now
    work()
    after = status("VmRSS")
    print(json.dumps([name, round(after - before), round(status("VmHWM") - after)]), flush=True)

def side_by_side(count, work):
    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads: thread.start()
    for thread in threads: thread.join()

data_dir, model_dir, shops = sys.argv[1], sys.argv[2], int(sys.argv[3])
photos = sorted(str(p) for p in Path(data_dir, "images").rglob("*.jpg"))
state = {}

def project():
    from types import SimpleNamespace
    from scrapy.utils.misc import load_object
    from scrapy.utils.project import get_project_settings
    from cumpair_scraper.memory import MallocLimits
    settings = get_project_settings()
    settings.set("INDEX_DATA_DIR", data_dir)
    settings.set("EMBED_MODEL_DIR", model_dir)
    MallocLimits.from_crawler(SimpleNamespace(settings=settings))  # as the crawl's extension
    for name in ("ITEM_PIPELINES", "EXTENSIONS", "DOWNLOADER_MIDDLEWARES"):
        for path, order in settings.getdict(name).items():
            if order is not None:
                load_object(path)
    import scrapy.crawler, scrapy_playwright.handler  # noqa: F401
    state["settings"] = settings

def encoders():
    from cumpair_scraper.pipelines.index import encoders_from_settings
    state["encoders"] = encoders_from_settings(state["settings"])

def sessions():
    state["encoders"].image.encode_images(photos[:1])
    state["encoders"].text.encode_texts(["cordless drill"])

def ocr_engines():
    from cumpair.vision.image_specs import read_image_specs
    from cumpair.vision.ocr_types import OcrOptions
    state["ocr"] = OcrOptions(engines=tuple(state["settings"].getlist("SPECS_OCR_ENGINES")))
    read_image_specs(photos[0], ocr_options=state["ocr"])

def store():
    from cumpair.embed.reindex import spaces_for
    from cumpair.index import ProductStore
    from cumpair.search.products import ProductGroups
    state["store"] = ProductStore.open(data_dir, spaces_for(state["encoders"]))
    state["groups"] = ProductGroups.open(data_dir)

def regroup():
    from cumpair.ingest.stages import regroup_store
    regroup_store(state["store"], state["groups"])

def embedding(count):
    from cumpair.embed.batch import default_workers
    batch = state["settings"].getint("EMBED_BATCH_SIZE")
    image = state["encoders"].image
    pixels = __import__("numpy").stack([image.prepare_image(p) for p in (photos * batch)[:batch]])
    side_by_side(count * default_workers(state["encoders"]), lambda: image.embed_prepared(pixels))

def ocr_reads(count):
    from cumpair.vision.image_specs import read_image_specs
    workers = count * state["settings"].getint("SPECS_MAX_WORKERS")
    read = lambda: [read_image_specs(p, ocr_options=state["ocr"]) for p in photos[:2]]
    side_by_side(workers, read)

print(json.dumps(["python", round(status("VmRSS")), 0]), flush=True)
step("Scrapy + the project's components (imports)", project)
step("encoders loaded (ONNX files found, no session)", encoders)
step("ONNX sessions: image and text model", sessions)
step("OCR engines (Tesseract, RapidOCR) + one read", ocr_engines)
step("store + grouping opened (FAISS, SQLite)", store)
step("regroup of every offer (what the last spider's close runs)", regroup)
step(f"embedding: a batch per model thread of each of {shops} crawlers", lambda: embedding(shops))
step(f"OCR: a read per specs worker of each of {shops} crawlers", lambda: ocr_reads(shops))
"""


@dataclass
class CrawlFigure:
    wall_s: float
    peak_mb: float
    items: int
    timeline: list[tuple[float, float, int]]  # seconds, MB resident, threads
    at_peak: dict[str, float]  # MB resident at the peak by what holds it
    threads_at_peak: int
    shops: list[str]  # crawlall's summary line per shop (none when killed)


# Which package a mapped file belongs to, for the breakdown of the peak.
_LIBRARIES = {
    "torch": ("libtorch", "libc10", "libcu", "libnv", "libtriton", "libcusparse", "libgomp"),
    "onnxruntime": ("onnxruntime",),
    "opencv": ("cv2", "libQt", "libavcodec", "libavformat"),
    "faiss": ("faiss",),
    "tesseract": ("libtesseract", "libleptonica", "tesserocr"),
}


def _status(pid: int) -> dict[str, int]:
    fields = {}
    with open(f"/proc/{pid}/status") as lines:
        for line in lines:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                fields[key] = int(value.split()[0])
    return fields


def _resident_by_holder(pid: int) -> dict[str, float]:
    """MB resident per kind of mapping (/proc/PID/smaps): anonymous memory (Python objects,
    model weights, activations, buffers) and the code of the big native libraries."""
    totals: dict[str, float] = {}
    holder = "anonymous"
    with open(f"/proc/{pid}/smaps") as lines:
        for line in lines:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                path = fields[5] if len(fields) > 5 else ""
                name = os.path.basename(path)
                if not path or path.startswith("["):
                    holder = "anonymous"
                else:
                    holder = next(
                        (lib for lib, prefixes in _LIBRARIES.items() if name.startswith(prefixes)),
                        "other files",
                    )
            elif fields[0] == "Rss:":
                totals[holder] = totals.get(holder, 0.0) + int(fields[1]) / 1024
    return totals


def measure_crawl(
    argv: list[str], env: dict[str, str], feeds: Path, output: Path, stop_after: float | None
) -> CrawlFigure:
    """Wall time and peak RSS of one crawl, its resident set sampled every 0.2 s (what holds
    it and its threads, read again each time it passes the peak by 20 MB). With `stop_after`,
    the crawl is killed after that many seconds: the figures are of that prefix."""
    start = time.perf_counter()
    with output.open("w") as out:
        child = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    timeline: list[tuple[float, float, int]] = []
    peak, read_at, at_peak, threads = 0.0, 0.0, {}, 0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if stop_after is not None and time.perf_counter() - start > stop_after:
            with contextlib.suppress(ProcessLookupError):  # with its browser (JavaScript shop)
                os.killpg(child.pid, signal.SIGKILL)
        try:
            fields = _status(child.pid)
            resident = fields.get("VmRSS", 0) / 1024
            if resident > max(peak, read_at + 20):  # a new peak, 20 MB above the last read
                at_peak, threads = _resident_by_holder(child.pid), fields.get("Threads", 0)
                read_at = resident
        except (FileNotFoundError, ProcessLookupError):
            continue  # exiting: wait4 reaps it next
        peak = max(peak, resident)
        timeline.append((time.perf_counter() - start, resident, fields.get("Threads", 0)))
        time.sleep(0.2)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0 and stop_after is None:
        text = output.read_text(errors="replace")
        raise SystemExit(f"{' '.join(argv)} failed ({child.returncode}):\n{text[-3000:]}")
    items = sum(len(feed.read_bytes().splitlines()) for feed in feeds.glob("*.jsonl"))
    shops = [line for line in output.read_text(errors="replace").splitlines() if "items=" in line]
    return CrawlFigure(wall, usage.ru_maxrss / 1024, items, timeline, at_peak, threads, shops)


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def account_parts(py: str, data_dir: Path, env: dict[str, str], shops: int) -> list[list]:
    """The accounting child's lines: [part, MB resident added, MB transient peak above]."""
    done = subprocess.run(
        [py, "-c", _ACCOUNT, str(data_dir), str(REPO / DEFAULT_MODEL_DIR), str(shops)],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the accounting process failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]


def crawl_rows(py: str, tmp: Path, env: dict[str, str], args: argparse.Namespace) -> None:
    """The crawl of the demo shops beside the bare crawl, with what its peak is made of."""
    from cumpair.demo.catalog import SHOP_HOSTS, SHOPS, build_catalog
    from cumpair.demo.server import DemoServer

    catalog = build_catalog(n_products=args.crawl_products) if args.crawl_products else None
    port = free_port(SHOP_HOSTS["northwind"])
    configs = bundled_configs_on_port(tmp / "shops", port)

    def crawl(name: str, *settings: str) -> list[str]:
        (tmp / name).mkdir()
        return [
            py, "-m", "scrapy", "crawlall", "--feeds-dir", str(tmp / name / "feeds"),
            "-s", f"SHOP_CONFIG_DIRS={configs}", "-s", f"INDEX_DATA_DIR={tmp / name / 'data'}",
            "-s", f"EMBED_MODEL_DIR={REPO / DEFAULT_MODEL_DIR}",
            "-s", f"LOG_FILE={tmp / name / 'crawl.log'}", *settings,
        ]  # fmt: skip

    with DemoServer(catalog=catalog, port=port):
        bare_argv = crawl("bare", "-s", "SPECS_ENABLED=False", "-s", "INDEX_ENABLED=False")
        stop = args.crawl_seconds
        bare = measure_crawl(bare_argv, env, tmp / "bare" / "feeds", tmp / "bare" / "out", stop)
        ours_argv = crawl("ours")
        ours = measure_crawl(ours_argv, env, tmp / "ours" / "feeds", tmp / "ours" / "out", stop)
    products = args.crawl_products or "demo"
    name = f"crawl ({len(SHOPS)} shops, {products})"
    print(
        f"{name:<24} {bare.wall_s:6.0f} s {bare.peak_mb:5.0f} MB {ours.wall_s:6.0f} s"
        f" {ours.peak_mb:5.0f} MB {ours.wall_s / bare.wall_s:4.1f}x"
        f" {ours.peak_mb / bare.peak_mb:4.1f}x"
    )
    stopped = f", each stopped after {stop} s" if stop else ""
    print(f"{'':<24} items: {ours.items} (bare crawl: {bare.items}); one run of each{stopped}")
    for line in ours.shops:
        print(f"{'':<26} {line}")
    fifth = ours.wall_s / 5
    fifths = [
        max((mb for t, mb, _ in ours.timeline if n * fifth <= t < (n + 1) * fifth), default=0.0)
        for n in range(5)
    ]
    print(f"{'':<24} peak RSS per fifth of the crawl: {', '.join(f'{mb:.0f}' for mb in fifths)} MB")
    holders = sorted(ours.at_peak.items(), key=lambda kv: -kv[1])
    print(f"{'':<24} at the peak ({ours.threads_at_peak} threads):"
          f" {', '.join(f'{k} {v:.0f} MB' for k, v in holders if v >= 1)}")  # fmt: skip
    if stop:
        return  # a killed crawl's store is not the finished crawl's: no accounting
    print(f"{'':<24} its parts, loaded one by one in a fresh process with the crawl's settings:")
    parts = account_parts(py, tmp / "ours" / "data", env, len(SHOPS))
    for part, resident, transient in parts:
        extra = f", peak +{transient} MB" if transient >= 5 else ""
        print(f"{'':<26} {part:<58} {resident:+5d} MB{extra}")
    held = sum(resident for _, resident, _ in parts)
    transient = max(transient for _, _, transient in parts)
    print(
        f"{'':<26} {'held + the largest transient':<58} {held + transient:5d} MB; the rest of the"
        f" peak, {ours.peak_mb - held - transient:.0f} MB: requests, responses and items in"
        " flight, thread stacks, allocator slack"
    )


def bare_scrapy_project(py: str, tmp: Path, env: dict[str, str]) -> Path:
    """A project as `scrapy startproject` writes it, with one spider: the least a `scrapy list`
    loads (Scrapy, its default settings, a spider module)."""
    # not "bare": the crawl rows' bare crawl writes its feeds under tmp / "bare"
    name = "bare_project"
    subprocess.run(
        [py, "-m", "scrapy", "startproject", name], cwd=tmp, env=env, capture_output=True,
        check=True,
    )  # fmt: skip
    (tmp / name / name / "spiders" / "shop.py").write_text(
        "import scrapy\n\n\nclass ShopSpider(scrapy.Spider):\n    name = 'shop'\n"
    )
    return tmp / name


def build_demo_index(path: Path, n_products: int) -> tuple[Path, str]:
    """A demo store of `n_products` products with offline vectors; returns a query photo and
    a GTIN one of its offers states (a lookup that finds a product and shows its offers)."""
    from cumpair.demo.catalog import build_catalog
    from cumpair.embed import load_encoders
    from cumpair.embed.reindex import spaces_for
    from cumpair.index import ProductStore, StoreOptions
    from cumpair.search.demo_index import demo_photo_path, demo_vectors, index_demo_offers
    from cumpair.search.products import ProductGroups

    encoders = load_encoders("offline")  # also writes the ONNX exports the commands load
    offers = build_catalog(n_products=n_products, seed=2).offers
    store = ProductStore.open(path, spaces_for(encoders), StoreOptions(duplicate_threshold=None))
    groups = ProductGroups.open(path)
    index_demo_offers(store, groups, offers, demo_vectors(offers, encoders), write_photos=True)
    store.flush()
    groups.close()
    store.close()
    if not list(path.glob("text.g*.faiss")):
        raise SystemExit(f"the demo store at {path} wrote no FAISS index file")
    stated = next(offer for offer in offers if offer.gtin_printed)
    return path / "images" / demo_photo_path(offers[0]), stated.product.gtin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (3)")
    parser.add_argument("--products", type=int, default=12, help="demo products indexed (12)")
    parser.add_argument("--build-only", metavar="DIR", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-commands", action="store_true", help="the crawl row only")
    parser.add_argument("--no-crawl", action="store_true", help="skip the crawl row (minutes)")
    parser.add_argument(
        "--crawl-products", type=int, help="products in the crawled catalog (default: the demo's)"
    )
    parser.add_argument(
        "--crawl-seconds", type=int, help="kill each crawl after this many seconds (a prefix)"
    )
    args = parser.parse_args(argv)
    if args.build_only:
        print("\n".join(map(str, build_demo_index(args.build_only, args.products))))
        return 0

    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        index = Path(tmp) / "index"
        started = time.perf_counter()
        # In a child process: a child forked from a process holding the encoders would
        # start with (and report) their resident memory.
        built = [py, __file__, "--products", str(args.products), "--build-only", str(index)]
        photo, gtin = subprocess.run(  # its last two lines (a temporary path may hold spaces)
            built, cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.splitlines()[-2:]
        print(
            f"demo store: {args.products} products, built in {time.perf_counter() - started:.0f} s"
        )
        home = Path(tmp) / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
        env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), PYTHONPATH=str(REPO))
        # With bytecode caches, as an installed package (or a checkout's second run) has them:
        # with PYTHONDONTWRITEBYTECODE every run compiles the project's modules again (70 ms of
        # a text query's 0.6 s CPU); written under the temporary directory, not the checkout.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        search = [py, "search_index.py", "--index", str(index), "--json"]
        vector = [py, "-c", _BASELINE_VECTOR, str(index)]
        gtin_issue = [py, "-c", _BASELINE_GTIN_ISSUE, str(index), gtin]
        gtin_lean = [py, "-c", _BASELINE_GTIN, str(index), gtin]
        # Scrapy's own start-up: `scrapy list` in a bare project (`scrapy startproject`, one
        # spider), and `scrapy version` outside any project (no settings module).
        bare_project = bare_scrapy_project(py, Path(tmp), env)
        bare_list = Baseline(
            "a bare project's `scrapy list`", [py, "-m", "scrapy", "list"], bare_project
        )
        bare_scrapy = Baseline("a bare `scrapy version`", [py, "-m", "scrapy", "version"], home)
        cases = [
            Case("search --text", [*search, "--text", "cordless drill"],
                 [Baseline("the issue's", [*vector, "text", "cordless drill"])], 1.0, 400, 1.5),
            Case("search --gtin", [*search, "--gtin", gtin],
                 [Baseline("the issue's (SQLite + FAISS files opened)", gtin_issue),
                  Baseline("SQLite alone", gtin_lean)], 1.0, 400, 1.5),
            Case("search --image", [*search, "--image", str(photo)],
                 [Baseline("the issue's", [*vector, "image", str(photo)])], 1.5),
            Case("search --image --no-ocr", [*search, "--image", str(photo), "--no-ocr"],
                 [Baseline("the issue's", [*vector, "image", str(photo)])], 1.5),
            Case("cumpair --help", [py, "-m", "cumpair.cli", "--help"],
                 [Baseline("python + argparse", [py, "-c", "import argparse"])], 0.5),
            Case("scrapy list", [py, "-m", "scrapy", "list"], [bare_list, bare_scrapy], 0.5,
                 max_ratio=SCRAPY_LIST_RATIO),
        ]  # fmt: skip
        load = os.getloadavg()[0]
        print(f"{args.runs} runs each, median wall, least CPU, largest peak RSS;"
              f" load average {load:.1f} on {os.cpu_count()} cores\n")  # fmt: skip
        header = f"{'command':<24} {'baseline':>24} {'ours':>24} {'ratio':>17}"
        print(header)
        print("-" * len(header))
        for case in [] if args.no_commands else cases:
            bases = [measure(b.argv, env, args.runs, b.cwd) for b in case.baselines]
            ours = measure(case.argv, env, args.runs)
            row = f"{_figures(bases[0])} {_figures(ours)} {_ratios(ours, bases[0])}"
            print(f"{case.name:<24} {row}")
            for baseline, base in zip(case.baselines, bases, strict=True):
                if len(bases) > 1:  # which baseline is which
                    row = f"{_figures(base)} {_ratios(ours, base)}"
                    print(f"{'':<24} beside {baseline.label}: {row}")
            print(f"{'':<24} {case.verdict(ours, bases[0])}")
            times = import_times(case.argv, env)
            print(f"{'':<24} imports: {', '.join(heaviest_imports(times))}")
            print(f"{'':<24} imported, never called: {unused_imports(case.argv, env, times)}")
        if not args.no_crawl:
            crawl_rows(py, Path(tmp), env, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
