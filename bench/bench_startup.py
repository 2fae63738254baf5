"""Start-up of the commands people run from scripts: wall time and peak RSS beside a baseline.

Each command runs in a fresh interpreter (`sys.executable`, so a pyenv shim's own start-up is
not counted), several times; the figures are the median wall time and the largest peak RSS
(the child's own `ru_maxrss`, from `os.wait4`). Baselines, from the same run:

* `search_index.py --text` / `--image`: a Python process that opens the same SQLite database and
  FAISS index file and runs the same vector search with the ONNX encoder (already exported),
  importing only that (numpy, faiss, onnxruntime, the encoder module); `--gtin`: the same
  process doing the SQLite GTIN lookup alone.
* `cumpair --help`: the interpreter starting and importing argparse.
* `scrapy list`: the interpreter importing Scrapy's command line, crawler and spiders.

The searches run on a small demo store built first (the demo catalog's real photos and texts,
the offline encoders), in a temporary directory, with no CLIP weights reachable (a temporary
HOME), so `auto` selects the offline encoders as it does on a fresh machine. Then, per command,
the heaviest top-level imports (`python -X importtime`) show what it loads; torch, open_clip,
torchvision, transformers or easyocr there is a bug while the offline encoders are selected.

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
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HEAVY = ("torch", "open_clip", "torchvision", "transformers", "easyocr")

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
_BASELINE_GTIN = """
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}/meta.sqlite?mode=ro", uri=True)
print(db.execute("SELECT title, price FROM offers WHERE gtin = ?", [sys.argv[2]]).fetchall())
"""
_BASELINE_SCRAPY = "import scrapy.cmdline, scrapy.crawler, scrapy.spiders"


@dataclass
class Figure:
    wall_s: float
    peak_mb: float


def measure(argv: list[str], env: dict[str, str], runs: int) -> Figure:
    """Median wall time and largest peak RSS of `runs` runs of `argv` (output discarded)."""
    walls, peaks = [], []
    for _ in range(runs):
        start = time.perf_counter()
        child = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(child.pid, 0)
        walls.append(time.perf_counter() - start)
        child.returncode = os.waitstatus_to_exitcode(status)
        error = child.stderr.read().decode(errors="replace")
        child.stderr.close()
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({child.returncode}):\n{error}")
        peaks.append(usage.ru_maxrss / 1024)  # KiB on Linux
    return Figure(statistics.median(walls), max(peaks))


def heaviest_imports(argv: list[str], env: dict[str, str], top: int = 6) -> list[str]:
    """The top-level packages whose modules took the longest to import (their own time)."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        cwd=REPO, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    totals: dict[str, int] = {}
    for line in done.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        package = fields[2].strip().split(".")[0]
        totals[package] = totals.get(package, 0) + int(fields[0])
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return [f"{name} {us / 1e6:.2f}s" + (" (!)" if name in HEAVY else "") for name, us in ranked]


def build_demo_index(path: Path, n_products: int) -> Path:
    """A demo store of `n_products` products with offline vectors; returns a query photo."""
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
    return path / "images" / demo_photo_path(offers[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (3)")
    parser.add_argument("--products", type=int, default=12, help="demo products indexed (12)")
    parser.add_argument("--build-only", metavar="DIR", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_only:
        print(build_demo_index(args.build_only, args.products))
        return 0

    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        index = Path(tmp) / "index"
        started = time.perf_counter()
        # In a child process: a child forked from a process holding the encoders would
        # start with (and report) their resident memory.
        built = [py, __file__, "--products", str(args.products), "--build-only", str(index)]
        photo = subprocess.run(built, capture_output=True, text=True, check=True).stdout.strip()
        print(
            f"demo store: {args.products} products, built in {time.perf_counter() - started:.0f} s"
        )
        home = Path(tmp) / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
        env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), PYTHONPATH=str(REPO))
        search = [py, "search_index.py", "--index", str(index), "--json"]
        vector = [py, "-c", _BASELINE_VECTOR, str(index)]
        cases = [
            ("search --text", [*search, "--text", "cordless drill"],
             [*vector, "text", "cordless drill"]),
            ("search --gtin", [*search, "--gtin", "4006381333931"],
             [py, "-c", _BASELINE_GTIN, str(index), "4006381333931"]),
            ("search --image", [*search, "--image", str(photo)], [*vector, "image", str(photo)]),
            ("search --image --no-ocr", [*search, "--image", str(photo), "--no-ocr"],
             [*vector, "image", str(photo)]),
            ("cumpair --help", [py, "-m", "cumpair.cli", "--help"], [py, "-c", "import argparse"]),
            ("scrapy list", [py, "-m", "scrapy", "list"],
             [py, "-c", _BASELINE_SCRAPY]),
        ]  # fmt: skip
        load = os.getloadavg()[0]
        print(f"{args.runs} runs each, median wall, largest peak RSS; load average {load:.1f}"
              f" on {os.cpu_count()} cores\n")  # fmt: skip
        header = f"{'command':<24} {'baseline':>16} {'ours':>16} {'ratio':>12}"
        print(header)
        print("-" * len(header))
        for name, ours_argv, base_argv in cases:
            base = measure(base_argv, env, args.runs)
            ours = measure(ours_argv, env, args.runs)
            print(
                f"{name:<24} {base.wall_s:6.2f} s {base.peak_mb:5.0f} MB"
                f" {ours.wall_s:6.2f} s {ours.peak_mb:5.0f} MB"
                f" {ours.wall_s / base.wall_s:4.1f}x {ours.peak_mb / base.peak_mb:4.1f}x"
            )
            print(f"{'':<24} imports: {', '.join(heaviest_imports(ours_argv, env))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
