"""`cumpair reindex`: a store built with an old encoder is rebuilt with the current encoders.

Real store, real offline encoders (PyTorch backend: no ONNX export in a temporary directory),
real demo photos; the old store's vectors are random ones of a made-up "old" encoder.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from cumpair.cli import main as cumpair_main
from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import render_product_photo
from cumpair.embed import load_encoders
from cumpair.embed.reindex import ReindexError, reindex, spaces_for
from cumpair.index import (
    EncoderMismatchError,
    OfferRecord,
    ProductStore,
    SpaceSpec,
    StoreLockedError,
)
from cumpair.search.demo_index import demo_offer_record
from cumpair.search.products import ProductGroups
from cumpair.search.store_scan import space_specs
from tests.model_fixtures import with_installed_models

pytestmark = pytest.mark.slow

OLD_SPACES = {
    "image": SpaceSpec(8, "old-image-encoder", "0"),
    "text": SpaceSpec(8, "old-text-encoder", "0"),
}
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
N_PHOTOS = 5  # offers with a good photo; two more have a missing and a broken one


@pytest.fixture(scope="module")
def encoders():
    return load_encoders("offline", backend="torch", threads=2)


def _distinct_offers(n: int):
    """`n` offers of different products (different pictures)."""
    seen, picked = set(), []
    for offer in build_catalog(n_products=12, seed=3).offers:
        if offer.product.clipart not in seen:
            seen.add(offer.product.clipart)
            picked.append(offer)
        if len(picked) == n:
            return picked
    raise AssertionError("catalog too small")


def build_old_store(root: Path) -> dict:
    """A store written by an "old" encoder, with photos on disk and two price points per offer.

    Returns what the rebuilt store must reproduce: url -> (record fields, history, photo).
    """
    path = root / "index_data"
    images = path / "images" / "full"
    images.mkdir(parents=True)
    (path / ".gitkeep").touch()
    rng = np.random.default_rng(0)
    offers = _distinct_offers(N_PHOTOS + 2)
    expected = {}
    with ProductStore.open(path, OLD_SPACES) as store:
        for n, offer in enumerate(offers):
            photo = render_product_photo(offer)
            name = f"{offer.shop}-{n}.png"
            if n == N_PHOTOS:  # listed but gone from disk
                image_path = "full/missing.png"
            elif n == N_PHOTOS + 1:  # on disk but not an image
                (images / name).write_bytes(b"not a picture")
                image_path = f"full/{name}"
            else:
                photo.save(images / name)
                # paths as the pipeline stores them (absolute, or relative to IMAGES_STORE),
                # and one from a store that was moved from another place
                image_path = {
                    0: str(images / name),
                    1: f"/elsewhere/index_data/images/full/{name}",
                }.get(n, f"full/{name}")
            for step, price in enumerate((offer.price, offer.price + Decimal("1.50"))):
                record = demo_offer_record(offer, price=price, seen_at=T0 + timedelta(days=step))
                record.image_paths = (image_path,)
                vectors = {
                    "image": rng.normal(size=(1, 8)).astype(np.float32),
                    "text": rng.normal(size=8).astype(np.float32),
                }
                offer_id = store.upsert(record, vectors).offer_id
            expected[offer_id] = {
                "record": store.get_offers([offer_id])[offer_id],
                "history": store.price_history(offer_id),
                "photo": photo if n < N_PHOTOS else None,
            }
    return {"path": path, "offers": expected}


def _fields(record) -> dict:
    """What a rebuild keeps; the product comes from the rebuild's own regroup."""
    return {k: v for k, v in dataclasses.asdict(record).items() if k != "product_id"}


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory, encoders):
    old = build_old_store(tmp_path_factory.mktemp("reindex"))
    report = reindex(old["path"], encoders, batch_size=4)
    return old, report


def test_rebuilt_store_opens_with_current_encoders_and_not_with_the_old_one(rebuilt, encoders):
    old, report = rebuilt
    with ProductStore.open(old["path"], spaces_for(encoders), readonly=True) as store:
        assert store.count("image") == N_PHOTOS
        assert store.count("text") == len(old["offers"])
    with pytest.raises(EncoderMismatchError):
        ProductStore.open(old["path"], OLD_SPACES, readonly=True)
    assert report.old_spaces == OLD_SPACES
    assert report.new_spaces == spaces_for(encoders)
    assert report.vectors == {"image": N_PHOTOS, "text": len(old["offers"])}


def test_records_and_price_history_survive_reindex(rebuilt):
    old, report = rebuilt
    with ProductStore.open(old["path"], readonly=True) as store:
        for offer_id, want in old["offers"].items():
            got = store.get_offers([offer_id])[offer_id]
            assert _fields(got) == _fields(want["record"])
            assert got.product_id is not None  # regrouped into the new store's products
            assert store.price_history(offer_id) == want["history"]
            assert len(want["history"]) == 2
    assert report.offers == len(old["offers"])
    assert report.price_points == 2 * len(old["offers"])
    assert report.offers_renumbered == 0


def test_missing_and_broken_photos_lose_only_their_vector(rebuilt):
    _, report = rebuilt
    assert (report.images_missing, report.images_unreadable) == (1, 1)
    assert report.offers_without_text == 0
    summary = report.summary()
    assert "1 missing, 1 unreadable" in summary
    assert "old-image-encoder@0 (8-d) -> efficientnet-lite0" in summary


def test_photo_of_an_offer_finds_it_in_the_rebuilt_store(rebuilt, encoders):
    old, _ = rebuilt
    with ProductStore.open(old["path"], readonly=True) as store:
        for offer_id, want in old["offers"].items():
            if want["photo"] is None:
                continue
            width, height = want["photo"].size
            query = want["photo"].crop((width // 10, height // 10, width, height))  # reframed
            hits = store.search("image", encoders.image.encode_images([query]), k=3)[0]
            assert hits[0].offer_id == offer_id


def test_a_compacted_store_is_rebuilt_without_its_old_vector_logs(tmp_path, encoders):
    """The old logs stay with the backup: carried over (a compacted store's epoch differs from the
    rebuild's), a writer would find them unknown to its database and keep them aside as damage."""
    old = build_old_store(tmp_path)
    with ProductStore.open(old["path"], OLD_SPACES) as store:
        store.compact()
    reindex(old["path"], encoders, batch_size=4)
    with ProductStore.open(old["path"], spaces_for(encoders)) as store:
        damage = store.health()["damage"]
    assert damage["found"] is False, damage
    assert not (old["path"] / "lost+found").exists()


def test_old_store_is_kept_as_backup_and_photos_follow_the_new_one(rebuilt):
    old, report = rebuilt
    backup = report.backup
    assert backup is not None and backup.name.startswith("index_data.old-")
    with ProductStore.open(backup, readonly=True) as store:
        assert store.count("image") == N_PHOTOS + 2  # the old random vectors, untouched
    for root in (old["path"], backup):
        assert sorted(p.name for p in (root / "images" / "full").iterdir()) == sorted(
            p.name for p in (backup / "images" / "full").iterdir()
        )
    assert (old["path"] / ".gitkeep").is_file() and (backup / ".gitkeep").is_file()
    leftovers = [p.name for p in old["path"].parent.iterdir() if ".reindex-" in p.name]
    assert leftovers == []


def test_products_are_regrouped_beside_the_rebuilt_store(rebuilt):
    old, report = rebuilt
    with ProductGroups.open(old["path"], readonly=True) as groups:
        products, offers = groups.count()
    assert offers == len(old["offers"])
    assert products == report.products >= 1


def test_out_dir_gets_the_new_store_and_leaves_the_old_one_alone(tmp_path, encoders):
    old = build_old_store(tmp_path)
    out = tmp_path / "rebuilt"
    report = reindex(old["path"], encoders, out=out)
    assert report.backup is None and report.store == out
    with ProductStore.open(old["path"], OLD_SPACES, readonly=True) as store:
        assert store.count("image") == N_PHOTOS + 2
    with ProductStore.open(out, spaces_for(encoders), readonly=True) as store:
        assert store.count("image") == N_PHOTOS
    assert (out / "images" / "full").is_dir()
    with pytest.raises(ReindexError, match="not empty"):
        reindex(old["path"], encoders, out=out)
    with pytest.raises(ReindexError, match="outside the store"):
        reindex(old["path"], encoders, out=old["path"] / "rebuilt")


def test_store_held_by_a_crawl_is_refused_before_loading_models(tmp_path, capsys):
    old = build_old_store(tmp_path)
    with ProductStore.open(old["path"], OLD_SPACES):  # the crawl's writer
        code = cumpair_main(["reindex", "--path", str(old["path"]), "--encoders", "offline"])
        with pytest.raises(StoreLockedError):
            reindex(old["path"], lambda: pytest.fail("models loaded for a locked store"))
    assert code == 1
    assert "is being written by another process" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index_data"]


def test_missing_store_is_a_clear_error(tmp_path, capsys):
    code = cumpair_main(["reindex", "--path", str(tmp_path / "nothing")])
    assert code == 1
    assert "no product store" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def test_offers_that_would_merge_stop_the_rebuild_and_leave_the_store_alone(tmp_path, encoders):
    # A crawl can leave two offers of one shop with the same GTIN (the first got its GTIN
    # later); replaying them through upsert would fold the second into the first.
    path = tmp_path / "index_data"
    with ProductStore.open(path, OLD_SPACES) as store:
        store.upsert(OfferRecord(shop="s", url="http://s/a", title="Kettle", seen_at=T0))
        store.upsert(OfferRecord(shop="s", url="http://s/b", title="Kettle", gtin="4006381333931"))
        store.upsert(OfferRecord(shop="s", url="http://s/a", title="Kettle", gtin="4006381333931"))
    with pytest.raises(ReindexError, match="would merge"):
        reindex(path, encoders)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index_data"]
    with ProductStore.open(path, OLD_SPACES, readonly=True) as store:
        assert len(store.get_offers([1, 2])) == 2


def test_cli_reindexes_into_a_clip_store_from_a_local_checkpoint(tmp_path, capsys):
    tiny = "cumpair-reindex-tiny-clip"  # a small random open_clip model in a local checkpoint
    config = tmp_path / f"{tiny}.json"
    config.write_text(
        json.dumps(
            {
                "embed_dim": 32,
                "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16,
                               "head_width": 16},
                "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32,
                             "heads": 2, "layers": 1},
            }
        )
    )  # fmt: skip
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.pt"
    torch.save(open_clip.create_model(tiny).state_dict(), checkpoint)
    old = build_old_store(tmp_path)
    out = tmp_path / "clip_store"
    code = cumpair_main(
        ["reindex", "--path", str(old["path"]), "--out", str(out), "--encoders", "clip",
         "--clip-model", tiny, "--clip-pretrained", str(checkpoint),
         "--clip-model-config", str(config), "--batch-size", "3"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert f"-> clip-{tiny}@sha256-" in printed and "1 missing, 1 unreadable" in printed
    with ProductStore.open(out, readonly=True) as store:
        specs = {name: (spec.encoder, spec.dim) for name, spec in space_specs(store).items()}
        assert specs == {"image": (f"clip-{tiny}", 32), "text": (f"clip-{tiny}", 32)}
        assert store.count("image") == N_PHOTOS
        assert store.count("text") == len(old["offers"])


def test_if_stale_rebuilds_only_a_store_of_other_encoders(tmp_path, capsys):
    assert cumpair_main(["reindex", "--if-stale", "--path", str(tmp_path / "none")]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert not (tmp_path / "none").exists()  # no models loaded (nor exported) for no store
    old = build_old_store(tmp_path)
    args = ["reindex", "--if-stale", "--path", str(old["path"]), "--encoders", "offline"]
    with_installed_models(old["path"])  # the ONNX export is not what is tested here
    assert cumpair_main(args) == 0
    out = capsys.readouterr().out
    assert "stale spaces: image, text" in out
    assert len(list(tmp_path.glob("index_data.old-*"))) == 1  # rebuilt, old store kept
    assert cumpair_main(args) == 0
    assert "up to date" in capsys.readouterr().out
    assert len(list(tmp_path.glob("index_data.old-*"))) == 1  # not rebuilt again
