"""Start-up imports: with the offline encoders selected, no command loads torch or open_clip,
and `cumpair` without a command (`--help`, `--version`) loads no sub-command's module; a crawl
exports missing ONNX models in a child process, so torch stays out of the crawl too.

Each check runs in a fresh interpreter (the test process itself has torch loaded by other
tests) whose home holds no CLIP weights, so `auto` selection picks the offline encoders.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cumpair.cli import _COMMANDS, build_full_parser, build_parser
from cumpair.demo.catalog import build_catalog
from cumpair.embed import load_encoders, onnx_export
from cumpair.embed.base import DEFAULT_MODEL_DIR
from cumpair.embed.reindex import spaces_for
from cumpair.index import ProductStore, StoreOptions
from cumpair.search.demo_index import demo_photo_path, demo_url, index_demo_offers
from cumpair.search.products import ProductGroups

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "open_clip", "torchvision", "easyocr", "transformers")


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory):
    """A small demo store with the offline encoders' spaces (and their ONNX exports on disk)."""
    path = tmp_path_factory.mktemp("index")
    store = ProductStore.open(
        path, spaces_for(load_encoders("offline")), StoreOptions(duplicate_threshold=None)
    )
    groups = ProductGroups.open(path)
    offers = build_catalog(n_products=4, seed=2).offers
    index_demo_offers(store, groups, offers, write_photos=True)
    groups.close()
    store.close()
    return path, path / "images" / demo_photo_path(offers[0])


def _in_fresh_process(code: str, home: Path, result: str):
    """Run `code` in a new interpreter from the repository root; the value (JSON) of the
    expression `result` after it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    probe = f"{textwrap.dedent(code)}\nimport json\nprint(json.dumps({result}))\n"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _loaded_in_fresh_process(code: str, home: Path, watched: tuple[str, ...] = HEAVY) -> list[str]:
    """Run `code` in a new interpreter; which `watched` modules it loaded."""
    return _in_fresh_process(
        code, home, f"[name for name in {watched!r} if name in __import__('sys').modules]"
    )


@pytest.mark.parametrize("query", ["--text", "--gtin", "--image"])
def test_search_queries_with_offline_encoders_do_not_import_torch(demo_index, tmp_path, query):
    index, photo = demo_index
    value = {"--text": "cordless drill", "--gtin": "4006381333931", "--image": str(photo)}[query]
    argv = ["--index", str(index), query, value, "--json", "--no-ocr"]
    if query != "--image":
        argv.remove("--no-ocr")
    loaded = _loaded_in_fresh_process(
        f"""
        import contextlib, io
        from cumpair.search.cli import main_search
        with contextlib.redirect_stdout(io.StringIO()):
            assert main_search({argv!r}) == 0
        """,
        tmp_path,
        # Units load with the first quantity to convert: none in these; the text encoder's
        # tokenizer with the first text to embed: none in a photo or GTIN query; Pillow with
        # the first photo to read: none in a text or GTIN query, though a text query loads the
        # image encoder (and the embedder's package); OpenCV with the first photo to resize;
        # price-parser with the first title's numbers to read: none in a query; filelock with
        # a store writer or an ONNX export: none in a read-only query with the models exported.
        (
            *HEAVY,
            "pint",
            "price_parser",
            "filelock",
            *(["tokenizers"] if query != "--text" else []),
            *(["PIL"] if query != "--image" else []),
            *(["cv2"] if query != "--image" else []),
        ),
    )
    assert loaded == []


def test_cli_help_and_scrapy_project_do_not_import_torch(tmp_path):
    loaded = _loaded_in_fresh_process(
        """
        import contextlib, io
        from scrapy.utils.misc import load_object
        from scrapy.utils.project import get_project_settings
        from cumpair.cli import build_parser

        with contextlib.redirect_stdout(io.StringIO()):
            build_parser(["--help"]).format_help()
        settings = get_project_settings()
        for path in settings.getdict("ITEM_PIPELINES"):
            load_object(path)
        """,
        tmp_path,
    )
    assert loaded == []


def test_scrapy_list_loads_the_spiders_without_the_store_or_page_extraction(tmp_path):
    """`scrapy list` imports the settings and every spider class: neither may pull in FAISS
    (via `cumpair.index`), extruct (via the page extraction the spiders use only to parse) or
    the alert run (via `cumpair.alerts`, whose options the settings declare)."""
    loaded = _loaded_in_fresh_process(
        """
        from scrapy.spiderloader import get_spider_loader
        from scrapy.utils.project import get_project_settings

        assert get_spider_loader(get_project_settings()).list()
        """,
        tmp_path,
        watched=("faiss", "extruct", "rdflib", "cumpair.index.store", "cumpair.alerts.run"),
    )
    assert loaded == []


def test_a_crawl_with_its_models_exported_does_not_import_torch(demo_index, tmp_path):
    # What a crawl process runs: every item pipeline built from the project's settings (the
    # index pipeline loads the encoders), both models and the default OCR chain used once.
    _, photo = demo_index
    loaded = _loaded_in_fresh_process(
        f"""
        from scrapy.utils.misc import build_from_crawler, load_object
        from scrapy.utils.project import get_project_settings
        from scrapy.utils.reactor import install_reactor
        from scrapy.utils.test import get_crawler

        from cumpair.vision.image_specs import read_image_specs
        from cumpair.vision.ocr_types import OcrOptions

        settings = get_project_settings()
        settings.set("INDEX_DATA_DIR", {str(tmp_path / "data")!r})
        settings.set("EMBED_MODEL_DIR", {str(DEFAULT_MODEL_DIR.resolve())!r})
        install_reactor(settings["TWISTED_REACTOR"])
        crawler = get_crawler(settings_dict=settings.copy_to_dict())
        pipelines = [
            build_from_crawler(load_object(path), crawler) for path in settings["ITEM_PIPELINES"]
        ]
        encoders = next(p.encoders for p in pipelines if hasattr(p, "encoders"))
        encoders.image.encode_images([{str(photo)!r}])
        encoders.text.encode_texts(["cordless drill"])
        engines = tuple(settings.getlist("SPECS_OCR_ENGINES"))
        read_image_specs({str(photo)!r}, ocr_options=OcrOptions(engines=engines))
        """,
        tmp_path,
    )
    assert loaded == []


def test_missing_onnx_exports_are_written_by_another_process(monkeypatch, tmp_path):
    # The export itself is stood in for by copying finished files: what is checked is that
    # the loading process hands it off instead of exporting (importing torch) itself.
    load_encoders("offline")  # the default model directory holds both exports after this
    handed_off = []

    def export_elsewhere(model_dir):
        handed_off.append(Path(model_dir))
        for onnx in DEFAULT_MODEL_DIR.glob("*.onnx"):
            (Path(model_dir) / onnx.name).write_bytes(onnx.read_bytes())

    monkeypatch.setattr(onnx_export, "export_in_child", export_elsewhere)
    (tmp_path / "models").mkdir()
    encoders = load_encoders("offline", model_dir=tmp_path / "models")
    assert handed_off == [tmp_path / "models"]
    assert encoders.text.encode_texts(["kettle"]).shape == (1, 384)


@pytest.mark.slow
def test_a_first_load_exports_in_a_child_and_never_imports_torch(tmp_path):
    models = tmp_path / "models"
    loaded = _loaded_in_fresh_process(
        f"""
        from cumpair.embed import load_encoders

        load_encoders("offline", model_dir={str(models)!r}).text.encode_texts(["kettle"])
        """,
        tmp_path,
    )
    assert loaded == []
    assert len(list(models.glob("*.onnx"))) == 2


@pytest.mark.parametrize(
    ("query", "models"),
    [("--text", ["all-minilm-l6-v2"]), ("--gtin", []), ("--image", ["efficientnet-lite0"])],
)
def test_a_query_opens_only_the_onnx_model_it_embeds_with(demo_index, tmp_path, query, models):
    index, photo = demo_index
    value = {"--text": "cordless drill", "--gtin": "4006381333931", "--image": str(photo)}[query]
    argv = ["--index", str(index), query, value, "--json", "--no-ocr"]
    opened = _in_fresh_process(
        f"""
        import contextlib, io
        from cumpair.embed.runtime import OnnxSession
        from cumpair.search.cli import main_search

        opened, open_session = [], OnnxSession.__init__

        def recording_open(self, path, threads):
            opened.append(path.name)
            open_session(self, path, threads)

        OnnxSession.__init__ = recording_open
        with contextlib.redirect_stdout(io.StringIO()):
            assert main_search({argv!r}) == 0
        """,
        tmp_path,
        "opened",
    )
    assert [name for name in opened if not name.startswith(tuple(models))] == []
    assert len(opened) == len(models)


@pytest.mark.parametrize(
    ("argv", "spaces"),
    [
        (["search", "--gtin", "GTIN"], []),
        (["history", "1"], []),
        (["search", "--text", "cordless drill"], ["image", "text"]),
    ],
    ids=["gtin", "history", "text"],
)
def test_only_vector_queries_open_the_stores_vector_spaces(
    demo_index, monkeypatch, capsys, argv, spaces
):
    # A GTIN lookup and a price history read rows: on a large index, loading its FAISS files
    # and replaying its vector logs would be most of their time.
    from cumpair.cli import main
    from cumpair.index.store.opening import Opening

    index, _ = demo_index
    opened, load_space = [], Opening._load_space

    def recording_load(self, name, spec):
        opened.append(name)
        return load_space(self, name, spec)

    monkeypatch.setattr(Opening, "_load_space", recording_load)
    offer = next(o for o in build_catalog(n_products=4, seed=2).offers if o.gtin_printed)
    gtin = offer.product.gtin  # an offer of the fixture's that states its GTIN
    argv = [argv[0], "--index", str(index), *(gtin if a == "GTIN" else a for a in argv[1:])]
    assert main(argv) == 0
    assert sorted(opened) == spaces
    if "--gtin" in argv:
        assert offer.title in capsys.readouterr().out


def test_a_photo_query_without_a_text_line_loads_no_ocr_engine(demo_index, tmp_path):
    # The text gate (RapidOCR's detector alone) finds no text line in a demo product photo:
    # the full OCR engine, its recognition model and its read are spared.
    index, photo = demo_index
    argv = ["--index", str(index), "--image", str(photo), "--json"]
    engines = _in_fresh_process(
        f"""
        import contextlib, io
        from cumpair.search.cli import main_search
        from cumpair.vision import text_gate
        from cumpair.vision.engines import loaded_engines

        with contextlib.redirect_stdout(io.StringIO()):
            assert main_search({argv!r}) == 0
        """,
        tmp_path,
        "[text_gate._detector is not None, list(loaded_engines()),"
        " [m for m in ('rapidocr.main', 'rapidocr.inference_engine', 'omegaconf', 'shapely')"
        " if m in __import__('sys').modules]]",
    )
    # The gate looked, no engine was loaded to read, and the gate ran RapidOCR's detection
    # model without importing RapidOCR's engine (most of a photo query's start-up: OmegaConf's
    # loads of its model tables; its package and `utils.process_img` are light) or shapely
    # (only for a region that looks like text).
    assert engines == [True, [], []]


@pytest.mark.parametrize("command", ["gtin", "history of a product", "history of a URL"])
def test_row_reads_import_neither_numpy_nor_faiss(demo_index, tmp_path, command):
    # A GTIN lookup and a price history read SQLite rows (`OfferRows`): numpy and FAISS were
    # most of their start-up (bench/bench_startup.py), imported by modules they never call.
    index, _ = demo_index
    offer = next(o for o in build_catalog(n_products=4, seed=2).offers if o.gtin_printed)
    run = {
        "gtin": f"main_search(['--index', {str(index)!r}, '--gtin', {offer.product.gtin!r}])",
        "history of a product": f"main(['history', '--index', {str(index)!r}, '1'])",
        "history of a URL": f"main(['history', '--index', {str(index)!r}, {demo_url(offer)!r}])",
    }[command]
    loaded = _loaded_in_fresh_process(
        f"""
        import contextlib, io
        from cumpair.cli import main
        from cumpair.search.cli import main_search

        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert {run} == 0
        assert {offer.title if command != "history of a product" else ""!r} in out.getvalue()
        """,
        tmp_path,
        ("numpy", "faiss", "PIL", *HEAVY),
    )
    assert loaded == []


@pytest.mark.parametrize("argv", [["--help"], ["--version"], []], ids=["help", "version", "none"])
def test_cumpair_without_a_command_imports_no_sub_command_module(tmp_path, argv):
    watched = (
        *sorted({command.module for command in _COMMANDS.values()}),
        "cumpair.index", "cumpair.search", "cumpair.embed", "cumpair_scraper",
        "faiss", "scrapy", "onnxruntime", "numpy", *HEAVY,
    )  # fmt: skip
    loaded = _loaded_in_fresh_process(
        f"""
        import contextlib, io
        from cumpair.cli import main

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                main({argv!r})
            except SystemExit:
                pass
        """,
        tmp_path,
        watched,
    )
    assert loaded == []


def test_the_command_listing_is_each_modules_own_help_line():
    listed = {name: command.help for name, command in _COMMANDS.items()}
    subparsers = next(
        action
        for action in build_full_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    assert {choice.dest: choice.help for choice in subparsers._choices_actions} == listed


def test_a_command_after_top_level_options_gets_its_own_parser():
    args = build_parser(["--log-level", "DEBUG", "index", "stats"]).parse_args(
        ["--log-level", "DEBUG", "index", "stats", "--index", "/some/store"]
    )
    assert args.command == "index" and args.index == "/some/store" and callable(args.func)


@pytest.mark.slow
def test_a_batch_of_photos_leaves_no_arena_resident(demo_index, tmp_path):
    # ONNX Runtime's CPU arena would keep a 32-photo batch's activations for the life of the
    # session (measured: 321 MB more resident after the batch with it, 69 MB without).
    _, photo = demo_index
    code = f"""
        from cumpair.embed.efficientnet import EfficientNetLite0Encoder

        def rss_mb():
            with open("/proc/self/status") as status:
                line = next(line for line in status if line.startswith("VmRSS"))
            return int(line.split()[1]) / 1024

        encoder = EfficientNetLite0Encoder(backend="onnx", threads=1)
        photos = [{str(photo)!r}] * 32
        encoder.encode_images(photos[:1])
        before = rss_mb()
        encoder.encode_images(photos)
        print(rss_mb() - before)
    """
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split()[-1]) < 160
