"""Cross-shop matching rules, grouping constraints and the evaluation metrics, on real demo data."""

from __future__ import annotations

import pytest

from cumpair.demo.catalog import build_catalog
from cumpair.search.evaluation import (
    demo_records,
    pairwise_scores,
    recall_at,
    record_features,
)
from cumpair.search.features import model_codes, offer_features, title_tokens
from cumpair.search.grouping import group_offers
from cumpair.search.matching import MatchConfig, compare, spec_conflicts


@pytest.fixture(scope="module")
def records():
    return demo_records(build_catalog(n_products=60, seed=3))


def test_model_codes_skip_quantities_and_ignore_separators():
    assert model_codes("ACME AA-100X Jigsaw 36V 256 GB 1.5L") == {"AA100X"}
    assert model_codes("Helix Docking Station (aa 101x)") == set()  # split token: not a code
    assert model_codes("WH-1000XM4 headphones") == model_codes("WH1000XM4 headphones")


def test_title_tokens_glue_numbers_to_units():
    assert "36v" in title_tokens("Jigsaw AA-100X by Acme, 36 V")
    assert "by" not in title_tokens("Jigsaw AA-100X by Acme, 36 V")


def test_same_gtin_printed_as_upc_and_ean_is_one_product():
    a = offer_features(1, "northwind", "ACME Drill", gtin="0012345678905")
    b = offer_features(2, "bluepeak", "Drill by Acme", gtin="012345678905")
    verdict = compare(a, b)
    assert verdict.same and verdict.rule == "gtin"


def test_different_gtins_are_different_products_even_with_identical_titles():
    a = offer_features(1, "northwind", "Acme Drill AA-100", gtin="4006381333931")
    b = offer_features(2, "bluepeak", "Acme Drill AA-100", gtin="4012345678901")
    verdict = compare(a, b, text_sim=1.0, image_sim=1.0)
    assert not verdict.same and verdict.rule == "gtin-conflict"


def test_a_gtin_with_a_broken_check_digit_counts_as_absent():
    a = offer_features(1, "northwind", "Acme Drill AA-100", gtin="4006381333932")
    assert a.gtin is None


def test_disjoint_model_codes_veto_a_similar_pair():
    a = offer_features(1, "northwind", "Acme Cordless Drill AA-100 18V")
    b = offer_features(2, "bluepeak", "Acme Cordless Drill AA-101 18V")
    verdict = compare(a, b, text_sim=0.99)
    assert not verdict.same and verdict.rule == "different"
    assert verdict.contributions["code_unexplained"] < 0


def test_small_weights_printed_in_ounces_are_no_conflict_but_different_weights_are():
    """The demo's 10 g flash drive is "0.4 oz" (11.3 g) in another shop: rounding, not another
    product; 10 g against 20 g is."""
    title = "Bytewise USB Flash Drive AA-101Pro 32 GB"
    grams = offer_features(1, "cornerstore", title, specs={"weight_g": 10.0, "storage_gb": 32.0})
    ounces = offer_features(2, "bluepeak", title, specs={"weight_g": 11.3, "storage_gb": 32.0})
    heavier = offer_features(3, "nebula", title, specs={"weight_g": 20.0, "storage_gb": 32.0})
    assert spec_conflicts(grams, ounces) == []
    assert spec_conflicts(grams, heavier) == ["weight_g 10 vs 20"]


def test_capacity_disagreement_vetoes_the_pair():
    a = offer_features(1, "northwind", "Helix SSD", specs={"storage_gb": 256})
    b = offer_features(2, "bluepeak", "Helix SSD", specs={"storage_gb": 512})
    verdict = compare(a, b, text_sim=0.99)
    assert not verdict.same and verdict.rule == "spec-conflict"
    assert "storage_gb 256 vs 512" in verdict.reasons


def test_shared_model_code_groups_differently_worded_titles():
    a = offer_features(1, "northwind", "ACME AA-100X Jigsaw 36V", brand="Acme")
    b = offer_features(2, "bluepeak", "Jigsaw AA-100X by Acme, 36 V", brand="acme")
    verdict = compare(a, b)
    assert verdict.same and verdict.rule == "learned"
    assert verdict.signals["code_exact"] == 1.0 and verdict.signals["brand_agree"] == 1.0


def test_learned_verdict_follows_the_threshold():
    a = offer_features(1, "northwind", "Red enamel teapot")
    b = offer_features(2, "bluepeak", "Teapot, red enamel")
    verdict = compare(a, b)
    assert compare(a, b, config=MatchConfig(threshold=verdict.score - 0.01)).same
    low = compare(a, b, config=MatchConfig(threshold=min(verdict.score + 0.01, 0.99)))
    assert not low.same and low.rule == "different"
    assert low.to_dict()["signals"]["token_jaccard"] == 1.0


def test_invalid_config_is_refused():
    with pytest.raises(ValueError):
        MatchConfig(threshold=0)
    with pytest.raises(ValueError):
        MatchConfig(threshold=1)


def test_grouping_of_the_demo_catalog_meets_the_f1_target(records):
    truth = {r["id"]: r["product"] for r in records}
    grouping = group_offers([record_features(r) for r in records])
    scores = pairwise_scores(grouping.labels, truth)
    assert scores.f1 >= 0.95, scores
    assert scores.true_pairs > 100


def test_grouping_without_gtins_still_meets_the_target(records):
    truth = {r["id"]: r["product"] for r in records}
    grouping = group_offers([record_features(r, hide_gtin=True) for r in records])
    assert pairwise_scores(grouping.labels, truth).f1 >= 0.95


def test_gtin_alone_misses_offers_printed_without_one(records):
    """The baseline the combined rules improve on: some shops print no GTIN."""
    truth = {r["id"]: r["product"] for r in records}
    features = [record_features(r) for r in records]
    labels = {f.key: f.gtin or f"alone-{f.key}" for f in features}
    assert pairwise_scores(labels, truth).recall < 1.0


def test_a_group_never_holds_two_offers_of_one_shop():
    a = offer_features(1, "northwind", "Acme Drill AA-100")
    b = offer_features(2, "northwind", "Acme Drill AA-100 (refurbished)")
    c = offer_features(3, "bluepeak", "Drill AA-100 by Acme")
    grouping = group_offers([a, b, c])
    assert grouping.labels[1] != grouping.labels[2]
    assert grouping.labels[3] in (grouping.labels[1], grouping.labels[2])


def test_grouping_does_not_chain_through_a_gtin_conflict():
    a = offer_features(1, "northwind", "Acme Drill AA-100", gtin="4006381333931")
    b = offer_features(2, "bluepeak", "Acme Drill AA-100")  # no GTIN: matches both by model
    c = offer_features(3, "nebula", "Acme Drill AA-100", gtin="4012345678901")
    labels = group_offers([a, b, c]).labels
    assert labels[1] != labels[3]


def test_grouping_explains_each_attachment():
    a = offer_features(1, "northwind", "Acme Drill", gtin="4006381333931")
    b = offer_features(2, "bluepeak", "Drill by Acme", gtin="4006381333931")
    grouping = group_offers([a, b])
    assert grouping.evidence[2].rule == "gtin"
    assert grouping.evidence[2].reasons == ("same GTIN 4006381333931",)


def test_duplicate_offer_keys_are_refused():
    a = offer_features(1, "northwind", "x")
    with pytest.raises(ValueError, match="unique"):
        group_offers([a, a])


def test_pairwise_scores_count_pairs():
    truth = {1: "a", 2: "a", 3: "a", 4: "b"}
    predicted = {1: 0, 2: 0, 3: 1, 4: 1}
    scores = pairwise_scores(predicted, truth)
    assert (scores.true_pairs, scores.predicted_pairs) == (3, 2)
    assert scores.precision == 0.5 and scores.recall == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        pairwise_scores({1: 0}, truth)


def test_recall_at_k():
    ranked = [["a", "b"], ["c", "a"], ["d"]]
    assert recall_at(ranked, ["a", "a", "x"], 1) == pytest.approx(1 / 3)
    assert recall_at(ranked, ["a", "a", "x"], 2) == pytest.approx(2 / 3)
