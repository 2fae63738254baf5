"""The learned matcher: the shipped model and its provenance, training, `cumpair match`."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cumpair.cli import main
from cumpair.embed.text import product_text
from cumpair.search.features import offer_features
from cumpair.search.matcher_model import (
    ENV_MODEL,
    MatcherModel,
    MatcherModelError,
    load_matcher,
)
from cumpair.search.matcher_train import (
    ENCODE_BATCH,
    LabelledPair,
    PairsError,
    learn_boilerplate,
    learn_weights,
    read_pairs,
    signal_matrix,
    text_similarities,
    train,
)
from cumpair.search.matching import MatchConfig, compare
from cumpair.search.signals import SIGNALS
from tests.real_data import REAL_DATA

FIXTURE = Path(__file__).parent / "fixtures" / "matching" / "wdc_computers_20.txt"
WDC_TRAIN = ("computers", "cameras", "watches", "shoes")


def test_the_shipped_model_says_how_it_was_made(monkeypatch):
    monkeypatch.delenv(ENV_MODEL, raising=False)
    model = load_matcher()
    assert Path(model.source).parts[-3:] == ("search", "models", "matcher.json")
    assert model.signals_used() <= set(SIGNALS) and "code_exact" in model.signals_used()
    provenance = model.provenance
    files = [Path(d["file"]) for d in provenance["data"]]
    assert [f.parent.name for f in files] == list(WDC_TRAIN)  # all four categories together
    assert all(
        f.name == "train.txt" and len(d["sha256"]) == 64
        for f, d in zip(files, provenance["data"], strict=True)
    )
    assert provenance["command"].startswith("cumpair matcher train ")
    assert provenance["trained_at"] and "scikit-learn" in provenance["learner"]
    assert 0.5 < provenance["cross_validated"]["f1"] <= 1
    # what the WDC titles cannot teach stays out of the decision instead of being guessed
    assert not model.signals_used() & set(provenance["signals_absent_from_data"])
    assert "price_known" in provenance["signals_absent_from_data"]


def test_the_shipped_model_loads_from_a_zipped_package(tmp_path):
    """scrapyd deploys the project as a zipped egg: the model has no path on disk there."""
    package = Path(__file__).resolve().parent.parent / "cumpair"
    egg = tmp_path / "project.egg"
    with zipfile.ZipFile(egg, "w") as archive:
        for file in package.rglob("*"):
            if file.is_file() and "__pycache__" not in file.parts:
                archive.write(file, Path("cumpair") / file.relative_to(package))
    probe = (
        "import cumpair.search.matcher_model as m; model = m.load_matcher();"
        "print(m.__file__); print(model.source); print(len(model.signals_used()))"
    )
    env = {k: v for k, v in os.environ.items() if k != ENV_MODEL}
    env["PYTHONPATH"] = str(egg)
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    module_file, source, used = done.stdout.split()
    assert module_file.startswith(str(egg)) and source.startswith(str(egg))
    assert int(used) > 0


def test_the_shipped_model_separates_a_shared_code_from_sibling_codes():
    same = compare(
        offer_features(1, "a", "HP 430165-003 146-GB 3G 10K 2.5 DP SAS"),
        offer_features(2, "b", "430165-003 HP 146GB SAS 10K 2.5in hot-plug drive"),
    )
    siblings = compare(
        offer_features(1, "a", "458418-B21 HP E5410 2.33GHz ML370 G5"),
        offer_features(2, "b", "488039-B21 HP X5470 3.33GHz ML370 G5"),
    )
    assert same.same and not siblings.same
    assert siblings.contributions["code_unexplained"] < 0


def test_a_model_file_round_trips_and_bad_files_get_a_clear_error(tmp_path):
    model = MatcherModel({"char_cosine": 2.0}, -1.0, 0.4, {"note": "x"})
    model.save(tmp_path / "m.json")
    again = MatcherModel.load(tmp_path / "m.json")
    assert again.coefficients == {"char_cosine": 2.0} and again.threshold == 0.4
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MatcherModelError, match="not JSON"):
        MatcherModel.load(tmp_path / "bad.json")
    data = model.to_dict() | {"features": ["no_such_signal"]}
    with pytest.raises(MatcherModelError, match="no_such_signal"):
        MatcherModel.from_dict(data)
    with pytest.raises(MatcherModelError, match="no matcher model"):
        load_matcher(tmp_path / "missing.json")


def test_the_environment_points_matching_at_an_operators_model(tmp_path, monkeypatch):
    MatcherModel({"char_cosine": 0.0}, -5.0, 0.5).save(tmp_path / "never.json")
    a = offer_features(1, "a", "Acme Drill AA-100 18V")
    b = offer_features(2, "b", "Acme Drill AA-100 18V")
    assert compare(a, b).same
    monkeypatch.setenv(ENV_MODEL, str(tmp_path / "never.json"))
    verdict = compare(a, b)
    assert not verdict.same and verdict.score < 0.01
    assert MatchConfig.from_settings({"CUMPAIR_MATCHER_MODEL": None}).model.intercept == -5.0


def test_pairs_are_read_in_the_wdc_format_and_as_json_lines(tmp_path):
    wdc = list(read_pairs(FIXTURE))
    assert len(wdc) == 20 and sum(p.label for p in wdc) == 10
    assert wdc[0].left["title"].startswith('"')  # raw: cleaning is the features' job
    lines = [{"left": p.left, "right": p.right, "label": p.label} for p in wdc]
    (tmp_path / "own.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert list(read_pairs(tmp_path / "own.jsonl")) == wdc
    (tmp_path / "bad.jsonl").write_text('{"left": {"title": "x"}, "right": {}, "label": 1}\n')
    with pytest.raises(PairsError, match=r"bad\.jsonl:1: an offer needs a title or a gtin"):
        list(read_pairs(tmp_path / "bad.jsonl"))
    (tmp_path / "label.txt").write_text("COL title VAL a\tCOL title VAL b\tmaybe\n")
    with pytest.raises(PairsError, match=r"label\.txt:1: label must be 0 or 1"):
        list(read_pairs(tmp_path / "label.txt"))


def test_matcher_train_writes_a_model_with_its_provenance(tmp_path, capsys):
    out = tmp_path / "mine.json"
    assert main(["matcher", "train", str(FIXTURE), "--out", str(out)]) == 0
    assert "cross-validated F1" in capsys.readouterr().out
    model = MatcherModel.load(out)
    (record,) = model.provenance["data"]
    assert record["sha256"] == hashlib.sha256(FIXTURE.read_bytes()).hexdigest()
    assert record["pairs"] == 20 and record["same_product"] == 10
    assert model.provenance["command"] == f"cumpair matcher train {FIXTURE}"
    assert "price_known" in model.provenance["signals_absent_from_data"]


def test_matcher_train_is_reproducible(tmp_path):
    """Same pairs, same command -> the same model file, all but the date it was made."""
    files = []
    for name in ("one.json", "two.json"):
        assert main(["matcher", "train", str(FIXTURE), "--out", str(tmp_path / name)]) == 0
        data = json.loads((tmp_path / name).read_text())
        assert data["provenance"].pop("trained_at")
        files.append(data)
    assert files[0] == files[1]
    assert set(files[0]["features"]) == set(SIGNALS)


REAL_WDC = REAL_DATA / "matching" / "wdc"


@pytest.mark.slow
@pytest.mark.skipif(not REAL_WDC.is_dir(), reason="../shared/data/real is not here")
def test_the_command_in_the_shipped_models_provenance_rebuilds_it(monkeypatch):
    """The shipped weights are what its recorded command makes of its recorded files (4.6 min
    on 2 cores at load 17)."""
    monkeypatch.delenv(ENV_MODEL, raising=False)
    shipped = load_matcher()
    files = [
        REAL_WDC / Path(d["file"]).parent.name / "train.txt" for d in shipped.provenance["data"]
    ]
    assert [hashlib.sha256(f.read_bytes()).hexdigest() for f in files] == [
        d["sha256"] for d in shipped.provenance["data"]
    ]
    encoder = None
    if shipped.provenance.get("text_encoder"):
        from cumpair.embed import load_encoders

        encoder = load_encoders("offline").text
    model = train(files, text_encoder=encoder)
    rebuilt = MatcherModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert rebuilt.threshold == shipped.threshold
    assert rebuilt.intercept == pytest.approx(shipped.intercept, abs=1e-5)
    assert rebuilt.coefficients == pytest.approx(shipped.coefficients, abs=1e-5)


def test_boosted_trees_round_trip_and_explain_every_step(tmp_path):
    pairs = [json.dumps({"left": p.left, "right": p.right, "label": p.label})
             for p in read_pairs(FIXTURE)]  # fmt: skip
    (tmp_path / "pairs.jsonl").write_text("\n".join(pairs * 3) + "\n")  # enough for splits
    model = train([tmp_path / "pairs.jsonl"], learner="trees", folds=3)
    assert model.kind == "gradient-boosted-trees" and model.trees and model.signals_used()
    model.save(tmp_path / "trees.json")
    again = MatcherModel.load(tmp_path / "trees.json")
    a = offer_features(1, "a", "HP 430165-003 146-GB 3G 10K 2.5 DP SAS")
    b = offer_features(2, "b", "430165-003 HP 146GB SAS 10K 2.5in")
    signals = compare(a, b).signals
    assert again.probability(signals) == pytest.approx(model.probability(signals), abs=1e-5)
    parts = again.contributions(signals)
    assert again.base + sum(parts.values()) == pytest.approx(again.log_odds(signals))
    assert {k for k, v in parts.items() if v} <= again.signals_used()


def test_a_tree_pointing_outside_itself_is_refused():
    with pytest.raises(MatcherModelError, match="malformed tree"):
        MatcherModel(
            {}, 0.0, 0.5, trees=((("char_cosine", 0.5, 1, 7, 0.0), (None, 0, -1, -1, 1.0)),)
        )


def test_training_on_one_label_only_is_refused(tmp_path):
    pair = {"left": {"title": "a 1"}, "right": {"title": "b 2"}, "label": 1}
    (tmp_path / "ones.jsonl").write_text((json.dumps(pair) + "\n") * 10)
    with pytest.raises(PairsError, match="each label"):
        train([tmp_path / "ones.jsonl"])


def _offer(tmp_path, name, **fields):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(fields))
    return str(path)


def test_cumpair_match_explains_the_decision(tmp_path, capsys):
    a = _offer(
        tmp_path, "a", title="Cooler Master Hyper 212 EVO RR-212E-20PK-R2", brand="Cooler Master"
    )
    b = _offer(tmp_path, "b", title="CoolerMaster Hyper 212 Evo cooler (RR-212E-20PK-R2)",
               brand="COOLERMASTER")  # fmt: skip
    assert main(["match", a, b, "--explain"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("same product: probability")
    assert "code_exact" in text and "brand_agree" in text and "base (no signal)" in text
    assert main(["match", a, b, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["same_product"] and data["signals"]["brand_agree"] == 1.0
    total = data["base"] + sum(data["contributions"].values())
    assert total == pytest.approx(-math.log(1 / data["score"] - 1), abs=1e-2)


def test_cumpair_match_refuses_what_is_not_an_offer(tmp_path, capsys):
    a = _offer(tmp_path, "a", title="Acme Drill")
    (tmp_path / "list.json").write_text("[1, 2]")
    assert main(["match", a, str(tmp_path / "list.json")]) == 2
    assert "an offer must be a JSON object" in capsys.readouterr().err
    assert main(["match", a, str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_training_compares_titles_without_the_shop_boilerplate_grouping_removes():
    """The matcher learns on the titles grouping scores: a shop's template tail learned from
    the training offers leaves the compared text, as `grouping` strips it from a store's."""
    tail = " | Costello Jewelry Company"
    names = ["Seiko Presage SRPB41", "Casio G-Shock GA-2100", "Tissot PRX T137", "Orient Bambino",
             "Citizen Eco-Drive BM8180", "Timex Marlin"]  # fmt: skip
    pairs = [
        LabelledPair({"title": name + tail, "shop": "costello"}, {"title": name, "shop": "b"}, 1)
        for name in names
    ]
    boilerplate = learn_boilerplate(pairs)
    assert ("costello", "jewelry", "company") in boilerplate.endings
    assert "costello" not in learn_weights(pairs, boilerplate).idf
    stripped = signal_matrix(pairs, None, boilerplate=boilerplate, withheld=0)
    raw = signal_matrix(pairs, None, withheld=0)
    column = SIGNALS.index("char_cosine")
    assert (stripped[:, column] > 0.99).all() and (raw[:, column] < 0.9).all()


class _CountingEncoder:
    """A stand-in text encoder: one vector per text, and the batches of texts it saw."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        vectors = np.array([[len(t), 1.0] for t in texts], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_text_cosine_is_learned_from_the_text_the_store_embeds_in_batches():
    # a brand the title leaves out: the store embeds it with the title (`product_text`)
    pairs = [
        LabelledPair({**p.left, "brand": "Zyxel"}, p.right, p.label) for p in read_pairs(FIXTURE)
    ]
    encoder = _CountingEncoder()
    sims = text_similarities(pairs, encoder, withheld=0)
    texts = {product_text(o) for p in pairs for o in (p.left, p.right)}
    seen = [t for batch in encoder.batches for t in batch]
    assert sorted(seen) == sorted(texts) and max(map(len, encoder.batches)) <= ENCODE_BATCH
    assert len(encoder.batches) > 1 and any(t.endswith(" Zyxel") for t in seen)
    vector = dict(zip(seen, encoder.encode_texts(seen), strict=True))
    expected = [float(vector[product_text(p.left)] @ vector[product_text(p.right)]) for p in pairs]
    assert sims == pytest.approx(expected)
