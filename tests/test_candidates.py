"""Candidate pairs: which offers grouping compares at all (`cumpair.search.candidates`), and a
caller's own pairs (`group_offers(pairs=...)`, what the incremental regroup passes)."""

from __future__ import annotations

from cumpair.search.candidates import candidate_pairs
from cumpair.search.features import offer_features
from cumpair.search.grouping import GroupingOptions, group_offers

GTIN = "4006381333931"


def _offers():
    titles = ("Acme Kettle KT-200 1.7 L", "ACME KT-200 kettle, 1.7l", "Acme KT-200 Kettle")
    return [offer_features(i, f"shop{i}", t, gtin=GTIN) for i, t in enumerate(titles)]


def test_a_shared_gtin_makes_every_pair_a_candidate():
    assert candidate_pairs(_offers(), title_neighbours=0) == {(0, 1), (0, 2), (1, 2)}


def test_group_offers_compares_only_the_pairs_it_is_given():
    offers = _offers()
    options = GroupingOptions()
    assert len(set(group_offers(offers, options=options).labels.values())) == 1
    labels = group_offers(offers, options=options, pairs=[(0, 1)]).labels
    assert labels[0] == labels[1] != labels[2]  # no pair reached offer 2
