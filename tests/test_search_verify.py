"""Keypoint verification of photo matches with real OpenCV on the demo shops' real photos."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from PIL import Image
from skimage import data

from cumpair.demo.catalog import build_catalog
from cumpair.demo.images import render_product_photo
from cumpair.search.augment import crop, photo_query, rotate
from cumpair.search.verify import (
    KEYPOINT_REACH,
    KEYPOINT_SATURATION,
    KEYPOINT_WEIGHT,
    MAX_FEATURES,
    MIN_INLIERS,
    MINORITY_APPARENT,
    MINORITY_SPAN,
    REST_CANDIDATES,
    REST_MARGIN,
    REST_MATCH,
    REST_VERIFY_MATCH,
    UNMATCHED,
    GeometricVerifier,
    Match,
    contenders,
    distinctive_counts,
    explain_away,
    fused_hits,
    fused_score,
    keypoint_evidence,
    keypoint_span,
)
from tests.real_data import SHOP_PHOTOS


@pytest.fixture(scope="module")
def verifier():
    return GeometricVerifier()


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(n_products=24, seed=13)


def verified_hits(verifier, query, hits, features_of, candidates, group_of=None):
    """The photo search's re-ranking: `fused_hits` of the hits' `keypoint_evidence`."""
    evidence = keypoint_evidence(verifier, query, hits, features_of, candidates, group_of)
    return fused_hits(hits, evidence, query)


def _offer(catalog, product_id, shop):
    return next(o for o in catalog.offers_for_product(product_id) if o.shop == shop)


def test_a_cropped_and_turned_photo_verifies_against_another_shops_photo(verifier, catalog):
    query = render_product_photo(_offer(catalog, "P000012", "bluepeak"))
    rng = random.Random(1)
    query = rotate(crop(query, rng), rng)
    other_shop = render_product_photo(_offer(catalog, "P000012", "northwind"))
    other_product = render_product_photo(_offer(catalog, "P000014", "northwind"))
    features = verifier.features(query)
    assert verifier.inliers(features, verifier.features(other_shop)) >= 3 * MIN_INLIERS
    assert verifier.inliers(features, verifier.features(other_product)) == 0


def test_a_photo_squeezed_onto_one_spot_of_another_product_does_not_verify(verifier):
    """The failure that made photo recall@1 0.853 on bench/eval_matching.py: RANSAC matched a
    monitor's 73 keypoints to a few corners of a battery's cap (scale 0.02: the whole photo
    mapped into 8 px), so the battery "verified" above the monitor's own photo."""
    catalog = build_catalog(n_products=80, seed=7)
    monitor, battery = (  # both as northwind photographs them, as in that evaluation
        dataclasses.replace(
            catalog.offers_for_product(
                next(p.product_id for p in catalog.products if art in p.clipart)
            )[0],
            shop="northwind",
        )
        for art in ("video_lcd_sergio", "battery_01")
    )
    with Image.open(monitor.product.clipart) as art:
        subject = art.convert("RGBA")
    query, applied = photo_query(render_product_photo(monitor), 7 + 18, subject)
    assert applied == ["crop", "jpeg"]  # the evaluation's query 18 of seed 7
    features = verifier.features(query)
    assert verifier.inliers(features, verifier.features(render_product_photo(battery))) == 0
    own = verifier.features(render_product_photo(monitor))
    assert verifier.inliers(features, own) >= 3 * MIN_INLIERS


def test_keypoints_shared_by_two_products_count_for_neither():
    matched = [frozenset({1, 2, 3, 9}), frozenset({1, 2, 4}), frozenset({3, 5, 6}), frozenset()]
    # Offers 0 and 2 show one product: keypoint 3 still counts for both; 1 and 2 count for none.
    assert distinctive_counts(matched, ["a", "b", "a", "c"]) == [2, 1, 3, 0]


def test_a_shops_shared_backdrop_verifies_none_of_its_other_products(verifier, catalog):
    """The linen backdrop of every cornerstore photo matches keypoint for keypoint: raw counts
    verify wrong products, counting only distinctive keypoints leaves the product itself."""
    truth = "P000021"
    query = crop(render_product_photo(_offer(catalog, truth, "cornerstore")), random.Random(1))
    others = [o for o in catalog.offers if o.shop == "cornerstore" and o.product_id != truth]
    own = [o for o in catalog.offers_for_product(truth) if o.shop != "cornerstore"]
    offers = others + own
    features = {n: verifier.features(render_product_photo(o)) for n, o in enumerate(offers)}
    query_features = verifier.features(query)
    raw = [verifier.inliers(query_features, features[n]) for n in range(len(others))]
    assert max(raw) >= MIN_INLIERS  # the backdrop alone passes a raw count

    # The other products come first by vector score, as a backdrop-led embedding would put them.
    hits = [(n, 0.99 - 0.001 * n) for n in range(len(offers))]
    product = {n: o.product_id for n, o in enumerate(offers)}
    ranked = verified_hits(
        verifier, query_features, hits, features.__getitem__, len(hits), group_of=product.get
    )
    assert product[ranked[0][0]] == truth
    assert all(score == dict(hits)[n] for n, score in ranked if product[n] != truth)

    # Without the product's own photos among the candidates, the vector order stands.
    alone = hits[: len(others)]
    ranked = verified_hits(
        verifier, query_features, alone, features.__getitem__, len(alone), group_of=product.get
    )
    assert ranked == alone


def test_unreadable_or_featureless_candidates_do_not_verify(verifier, tmp_path):
    flat = verifier.features(Image.new("RGB", (200, 200), (90, 120, 200)))
    photo = verifier.features(
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    )
    assert verifier.inliers(photo, None) == 0
    assert verifier.inliers(photo, flat) == 0
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert verifier.features_of_file(str(broken)) is None


def test_an_oversized_stored_photo_does_not_verify_nor_fail_the_query(
    verifier, tmp_path, monkeypatch
):
    huge = tmp_path / "huge.png"
    Image.new("RGB", (300, 300), (90, 120, 200)).save(huge)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100 // 2)  # 300x300 is past 2x: a bomb
    assert verifier.features_of_file(str(huge)) is None


def test_keypoints_add_a_bounded_bonus_to_the_cosine():
    assert fused_score(0.7, MIN_INLIERS - 1) == 0.7  # below the floor: chance, no bonus
    assert fused_score(0.7, KEYPOINT_SATURATION) == pytest.approx(0.7 + KEYPOINT_WEIGHT)
    assert fused_score(0.7, MIN_INLIERS) < fused_score(0.7, 2 * MIN_INLIERS)
    # Above saturation more inliers still rank higher, slowly: ORB's whole list gives under
    # twice the bonus at saturation, and keypoints in a corner of the shot count for less.
    assert fused_score(0.7, 159) > fused_score(0.7, 47) > fused_score(0.7, KEYPOINT_SATURATION)
    assert fused_score(0.7, MAX_FEATURES) - 0.7 < 2 * KEYPOINT_WEIGHT
    assert fused_score(0.7, MAX_FEATURES, span=0.2) < fused_score(0.7, KEYPOINT_SATURATION)


def test_only_hits_within_reach_of_the_best_are_contenders():
    hits = [(1, 0.9), (2, 0.9 - KEYPOINT_REACH), (3, 0.5), (4, 0.89)]
    assert contenders(hits, 3) == [(1, 0.9), (2, 0.9 - KEYPOINT_REACH)]
    assert contenders([], 20) == []


def test_a_hit_keypoints_could_lift_but_further_than_the_reach_is_not_matched():
    """The reach is narrower than the bonus: a hit 0.28 below the best keeps its cosine."""
    assert KEYPOINT_REACH < 0.28 < KEYPOINT_WEIGHT
    hits = [(1, 0.9), (2, 0.62)]
    matched = []

    class _Verifier:
        def matched_keypoints(self, query, candidate):
            matched.append(candidate)
            return frozenset(range(KEYPOINT_SATURATION))

    query = ([(x, x) for x in range(KEYPOINT_SATURATION)], None)
    assert verified_hits(_Verifier(), query, hits, lambda offer: offer, 20)[1] == (2, 0.62)
    assert matched == [1]


def test_a_decisive_vector_margin_skips_the_keypoint_check():
    """No other hit within reach of the best: no keypoints matched, not even the query's."""
    from types import SimpleNamespace

    from cumpair.search.service import SearchService

    service = SearchService(SimpleNamespace(path="unused"), None, encoder_loader=lambda: None)
    hits = [(1, 0.9), (2, 0.9 - KEYPOINT_REACH - 0.01)]
    assert service._verify(Image.new("RGB", (64, 64)), hits, lambda box: []) == hits
    assert service._verifier is None  # never built: nothing was matched


def test_contenders_that_are_all_offers_of_one_product_skip_the_keypoint_check():
    """Three shops' offers of one product close together: keypoints could reorder only offers
    of that product, whose score is its best offer's, so none are matched."""
    from types import SimpleNamespace

    from cumpair.search.service import SearchService

    groups = SimpleNamespace(product_of=lambda ids: dict.fromkeys(ids, 7))
    service = SearchService(SimpleNamespace(path="unused"), groups, encoder_loader=lambda: None)
    hits = [(1, 0.9), (2, 0.88), (3, 0.85)]
    assert service._verify(Image.new("RGB", (64, 64)), hits, lambda box: []) == hits
    assert service._verifier is None


def test_keypoint_span_is_the_share_of_the_shot_the_matches_cover():
    grid = [(x, y) for x in range(0, 101, 10) for y in range(0, 101, 10)]  # 11 x 11 points
    query = (grid, None)
    corner = frozenset(n for n, (x, y) in enumerate(grid) if x <= 30 and y <= 30)
    assert keypoint_span(query, corner) == pytest.approx(0.3)
    assert keypoint_span(query, frozenset(range(len(grid)))) == pytest.approx(1.0)
    assert keypoint_span(query, frozenset()) == 0.0


@pytest.mark.slow
def test_a_second_known_product_in_the_shot_does_not_win_over_the_photographed_one(verifier):
    """A real photo (skimage's astronaut) taken at an angle and blurred, with another known
    product's photo (skimage's camera man) lying sharp in a corner: the corner photo has more
    matched keypoints, the vector says the shot is of the astronaut, and the fused score must
    keep the astronaut first (when verified candidates ranked above every cosine, it lost)."""
    from PIL import ImageFilter
    from skimage import data

    from cumpair.embed import load_encoders
    from cumpair.search.augment import Scene, perspective

    def rgb(array):
        array = np.asarray(array)
        return Image.fromarray(np.stack([array] * 3, -1) if array.ndim == 2 else array[..., :3])

    names = ("astronaut", "camera", "coffee", "rocket", "chelsea", "page")
    gallery = [rgb(getattr(data, name)()) for name in names]
    shot = perspective(gallery[0], random.Random(3), Scene([rgb(data.brick())], []))
    shot = shot.filter(ImageFilter.GaussianBlur(2))
    corner = gallery[1].resize((shot.width * 2 // 5, shot.height * 2 // 5))
    shot.paste(corner, (shot.width - corner.width, shot.height - corner.height))

    features = [verifier.features(photo) for photo in gallery]
    query = verifier.features(shot)
    assert verifier.inliers(query, features[1]) > verifier.inliers(query, features[0])

    image = load_encoders("offline").image
    cosines = (image.encode_images([shot]) @ image.encode_images(gallery).T)[0]
    hits = sorted(enumerate(cosines.tolist()), key=lambda hit: -hit[1])
    ranked = verified_hits(verifier, query, hits, features.__getitem__, len(hits))
    assert ranked[0][0] == 0


def test_offers_sharing_one_photo_are_matched_once_and_scored_alike(verifier, catalog):
    photo = render_product_photo(catalog.offers[0])
    shared, other = verifier.features(photo), verifier.features(Image.new("RGB", (64, 64)))
    calls = []

    class Counting:
        def matched_keypoints(self, query, candidate):
            calls.append(candidate)
            return verifier.matched_keypoints(query, candidate)

    photos = {1: shared, 2: shared, 3: other, 4: shared}
    hits = [(1, 0.9), (2, 0.89), (3, 0.88), (4, 0.87)]
    query = verifier.features(crop(photo, random.Random(2)))
    product = {1: "a", 2: "a", 3: "b", 4: "a"}.get  # one product's offers share its photo
    ranked = dict(
        verified_hits(Counting(), query, hits, photos.__getitem__, len(hits), group_of=product)
    )
    assert len(calls) == 2
    assert ranked[1] - 0.9 == pytest.approx(ranked[4] - 0.87)
    assert ranked[1] - 0.9 > 0.1  # verified: the keypoint bonus was added


def _corner_evidence():
    """A 10 x 10 grid of query keypoints over a 100 x 100 shot and the best hit (offer 1)
    verified by the 16 in its top-left corner (span 0.33 of the shot's side)."""
    grid = [(x * 11.0, y * 11.0) for x in range(10) for y in range(10)]
    corner = frozenset(n for n, (x, y) in enumerate(grid) if x <= 33 and y <= 33)
    hits = [(1, 0.70), (2, 0.66), (3, 0.40)]
    evidence = {1: corner, 2: frozenset()}
    query = (grid, None)
    return hits, fused_hits(hits, evidence, query), evidence, query


def test_a_known_photo_in_a_corner_gives_way_to_what_the_rest_of_the_shot_matches():
    hits, fused, evidence, query = _corner_evidence()
    assert fused[0][0] == 1 and fused[0][1] > 0.70  # the corner's keypoints lifted it
    asked = []

    def rest_hits(box):
        asked.append(box)
        return [(2, REST_MATCH + 0.15), (1, 0.3)]

    ranked = explain_away(hits, fused, evidence, query, (100, 100), rest_hits)
    # The subject takes the corner's place; the corner keeps its cosine, without keypoints.
    assert ranked[:2] == [(2, fused[0][1]), (1, 0.70)]
    assert asked == [pytest.approx((0.0, 0.0, 0.33, 0.33))]  # the corner's box, as shares


def test_once_the_corner_is_explained_the_subject_may_be_what_the_whole_shot_matched():
    """The rest of the shot matches one photo well and clearly better than the corner's, so the
    corner is explained away; but another offer matched the whole shot better still than that
    photo matches the rest (a product under a pasted photo, whose shot is mostly of it): that
    offer is the subject, not the rest's first hit."""
    hits, fused, evidence, query = _corner_evidence()  # offer 2 matches the whole shot at 0.66
    rest = [(3, REST_MATCH + 0.02), (2, REST_MATCH - 0.1), (1, 0.3)]
    ranked = explain_away(hits, fused, evidence, query, (100, 100), lambda box: rest)
    assert REST_MATCH + 0.02 < 0.66
    assert ranked[0] == (2, fused[0][1]) and dict(ranked)[1] == 0.70


def test_an_explained_corner_loses_its_bonus_on_every_offer_of_its_product():
    """The corner's photo is listed by two shops (offers 1 and 4, one product): both verified
    it, so both lose the keypoint bonus; the sibling keeping it tied the subject's score and
    kept the corner's product first."""
    hits, _, evidence, query = _corner_evidence()
    hits = [(1, 0.70), (4, 0.70), *hits[1:]]
    evidence = {**evidence, 4: evidence[1]}
    fused = fused_hits(hits, evidence, query)
    product = {1: "corner", 4: "corner", 2: "subject", 3: "other"}.get
    rest = [(2, REST_MATCH + 0.15), (1, 0.3)]
    ranked = explain_away(hits, fused, evidence, query, (100, 100), lambda box: rest, product)
    assert ranked[0] == (2, fused[0][1])
    assert dict(ranked)[1] == 0.70 and dict(ranked)[4] == 0.70


def test_of_two_subjects_scored_alike_the_one_ranked_first_takes_the_corners_place():
    hits, _, evidence, query = _corner_evidence()
    hits = [(1, 0.70), (5, 0.66), (2, 0.66), (3, 0.40)]  # 5 ranked before 2, at one score
    fused = fused_hits(hits, {**evidence, 5: frozenset()}, query)
    rest = [(3, REST_MATCH + 0.02), (1, 0.3)]
    ranked = explain_away(hits, fused, evidence, query, (100, 100), lambda box: rest)
    assert ranked[0] == (5, fused[0][1])
    hits[1:3] = [(2, 0.66), (5, 0.66)]
    fused = fused_hits(hits, {**evidence, 5: frozenset()}, query)
    ranked = explain_away(hits, fused, evidence, query, (100, 100), lambda box: rest)
    assert ranked[0] == (2, fused[0][1])


def test_a_corner_match_stays_best_when_the_rest_of_the_shot_matches_nothing_well():
    """A product small on a textured floor: verified in a corner, the floor matches nothing."""
    hits, fused, evidence, query = _corner_evidence()
    rest = [(2, REST_MATCH - 0.01)]
    assert explain_away(hits, fused, evidence, query, (100, 100), lambda box: rest) == fused
    # Another offer of the best hit's own product in the rest is no other subject.
    same = [(7, 0.9)]
    group = {1: "p", 7: "p"}.get
    assert explain_away(hits, fused, evidence, query, (100, 100), lambda box: same, group) == fused


def test_a_rest_of_the_shot_that_is_more_of_the_best_photo_is_no_other_subject():
    """A warped shot whose keypoints cluster in a corner: its rest still looks like the best
    photo about as much as like another one, so the best keeps its keypoints."""
    hits, fused, evidence, query = _corner_evidence()
    rest = [(2, REST_MATCH + 0.1), (1, REST_MATCH + 0.1 - REST_MARGIN / 2)]
    assert explain_away(hits, fused, evidence, query, (100, 100), lambda box: rest) == fused
    # Not among the rest's hits: the best photo matches it at most as well as the last one.
    rest = [(2, REST_MATCH + 0.1), (3, REST_MATCH + 0.05)]
    assert explain_away(hits, fused, evidence, query, (100, 100), lambda box: rest) == fused


def test_a_best_hit_verified_across_the_shot_is_not_second_guessed():
    grid = [(x * 11.0, y * 11.0) for x in range(10) for y in range(10)]
    hits = [(1, 0.70), (2, 0.66)]
    evidence = {1: frozenset(range(len(grid)))}
    query = (grid, None)
    fused = fused_hits(hits, evidence, query)

    def rest_hits(box):
        raise AssertionError("the rest of the shot is not searched")

    assert keypoint_span(query, evidence[1]) >= MINORITY_SPAN
    assert explain_away(hits, fused, evidence, query, (100, 100), rest_hits) == fused


def _rest_verifying(subject, apparent, corner_apparent, also=None):
    """A `match_offer` for `_corner_evidence`: the rest of the shot (every keypoint outside the
    corner's box) verifies `subject`, whose photo appears `apparent` large in the shot, by its
    first 40 keypoints (and `also` by the others); the whole shot matches the corner's photo
    (offer 1) at `corner_apparent`. Records the (features, offer id) it was asked about."""
    asked = []

    def match_offer(features, offer_id):
        asked.append((features, offer_id))
        if offer_id == 1:
            return Match(frozenset(range(16)), corner_apparent)
        if offer_id == subject:
            return Match(frozenset(range(40)), apparent)
        if offer_id == also:
            return Match(frozenset(range(40, len(features.points))), apparent)
        return UNMATCHED

    match_offer.asked = asked
    return match_offer


# A rest that matches known photos, none well enough for its cosine to say which it is of.
WEAK_REST = [(2, REST_VERIFY_MATCH), (3, REST_VERIFY_MATCH - 0.05), (1, 0.3)]
assert REST_VERIFY_MATCH < REST_MATCH


def test_a_corner_match_gives_way_to_a_larger_photo_the_rest_of_the_shot_verifies():
    """White clothing under a known photo pasted in a corner: the rest's cosine is too weak to
    say what the shot is of, its keypoints verify the clothing, whose photo fills the shot."""
    hits, fused, evidence, query = _corner_evidence()
    match_offer = _rest_verifying(3, 1.0, 0.33)
    ranked = explain_away(
        hits, fused, evidence, query, (100, 100), lambda box: WEAK_REST, match_offer=match_offer
    )
    assert ranked[:2] == [(3, fused[0][1]), (1, 0.70)]  # the corner's keypoint bonus is gone
    # The corner's own size is asked first (`MINORITY_APPARENT`), then the rest's keypoints.
    assert match_offer.asked[0] == (query, 1)
    rest, offer_id = match_offer.asked[1]
    corner = {query[0][n] for n in evidence[1]}
    assert offer_id == 2 and len(rest.points) == 100 - 16 and not corner & set(rest.points)
    assert rest.size == (100, 100)
    # Without keypoints to match, the weak rest changes nothing.
    assert explain_away(hits, fused, evidence, query, (100, 100), lambda box: WEAK_REST) == fused


def test_a_rest_of_the_shot_that_matches_no_photo_at_all_is_not_keypoint_checked():
    """A product small on a floor: verified with a small span, its rest is floor."""
    hits, fused, evidence, query = _corner_evidence()
    match_offer = _rest_verifying(3, 1.0, 0.33)
    floor = [(2, REST_VERIFY_MATCH - 0.01), (3, REST_VERIFY_MATCH - 0.02), (1, 0.3)]
    ranked = explain_away(
        hits, fused, evidence, query, (100, 100), lambda box: floor, match_offer=match_offer
    )
    # Only the corner's own size was asked (a pair just matched), no rest's keypoints.
    assert ranked == fused and match_offer.asked == [(query, 1)]


def test_a_photo_the_rest_verifies_that_appears_smaller_than_the_corners_does_not_win():
    """The shot is of what fills it: a product with few keypoints verified in a corner of the
    shot beside a known photo pasted at half its scale stays first."""
    hits, fused, evidence, query = _corner_evidence()
    match_offer = _rest_verifying(3, 0.5, 0.6)
    ranked = explain_away(
        hits, fused, evidence, query, (100, 100), lambda box: WEAK_REST, match_offer=match_offer
    )
    assert ranked == fused and (query, 1) in match_offer.asked  # the corner's size was asked


def test_a_rest_of_the_shot_that_verifies_two_other_products_names_neither():
    """The demo shops' photos share a backdrop: the rest of a shot may verify several of them
    (by different keypoints), which says nothing of what the shot is of."""
    hits, fused, evidence, query = _corner_evidence()
    match_offer = _rest_verifying(3, 1.0, 0.33, also=2)
    ranked = explain_away(
        hits, fused, evidence, query, (100, 100), lambda box: WEAK_REST, match_offer=match_offer
    )
    assert ranked == fused


def test_only_the_first_other_offers_of_the_rest_are_matched():
    hits, fused, evidence, query = _corner_evidence()
    rest = [(10 + n, REST_VERIFY_MATCH - n / 100) for n in range(REST_CANDIDATES + 5)]
    match_offer = _rest_verifying(10 + REST_CANDIDATES, 1.0, 0.33)  # just past the first ones
    ranked = explain_away(
        hits, fused, evidence, query, (100, 100), lambda box: rest, match_offer=match_offer
    )
    assert ranked == fused
    asked = [o for f, o in match_offer.asked if f is not query]
    assert asked == [10 + n for n in range(REST_CANDIDATES)]


@pytest.fixture(scope="module")
def pasted_scene():
    """skimage's astronaut with its camera man pasted over the top-left quarter, and the four
    photos of a gallery: (shot, [astronaut, camera, coffee, rocket])."""
    from skimage import data

    def rgb(array):
        array = np.asarray(array)
        return Image.fromarray(np.stack([array] * 3, -1) if array.ndim == 2 else array[..., :3])

    gallery = [rgb(getattr(data, name)()) for name in ("astronaut", "camera", "coffee", "rocket")]
    shot = gallery[0].copy()
    shot.paste(gallery[1].resize((shot.width // 2, shot.height // 2)), (0, 0))
    return shot, gallery


#: The camera man first by its cosine, the astronaut far below (out of the keypoints' reach),
#: and what the rest of the shot outside the camera man matches: nothing well.
PASTED_HITS = [(1, 0.80), (2, 0.70), (3, 0.66), (0, 0.45)]
PASTED_REST = [(2, 0.5), (1, 0.48), (0, 0.45), (3, 0.4)]


def test_a_real_photo_under_a_known_photo_pasted_in_its_corner_is_found_by_its_keypoints(
    verifier, pasted_scene
):
    """The camera man verifies with many keypoints in a corner and wins the fused score; the
    rest of the shot matches no photo well by its cosine (as for white clothing or the moon),
    but its keypoints verify the astronaut, whose photo appears twice as large in the shot."""
    shot, gallery = pasted_scene
    features = [verifier.features(photo) for photo in gallery]
    query = verifier.features(shot)
    assert verifier.match(query, features[0]).apparent == pytest.approx(1.0, abs=0.05)
    assert verifier.match(query, features[1]).apparent == pytest.approx(0.5, abs=0.05)

    hits = PASTED_HITS
    evidence = keypoint_evidence(verifier, query, hits, features.__getitem__, len(hits))
    fused = fused_hits(hits, evidence, query)
    assert fused[0][0] == 1 and keypoint_span(query, evidence[1]) < MINORITY_SPAN

    def match_offer(rest_features, offer_id):
        return verifier.match(rest_features, features[offer_id])

    ranked = explain_away(
        hits, fused, evidence, query, query.size, lambda box: PASTED_REST, match_offer=match_offer
    )
    assert ranked[0] == (0, fused[0][1]) and dict(ranked)[1] == 0.80


def _photo_service(tmp_path, gallery, removed=frozenset()):
    """A `SearchService` over offers 0.. whose photos are `gallery`'s, saved in `tmp_path`, each
    offer its own product; the offers in `removed` are gone from the store (as when one is
    removed between the photo search and the keypoint check's reads)."""
    from types import SimpleNamespace

    from cumpair.search.service import SearchService

    records = {}
    for offer_id, photo in enumerate(gallery):
        photo.save(tmp_path / f"{offer_id}.png")
        if offer_id not in removed:
            records[offer_id] = SimpleNamespace(image_paths=[f"{offer_id}.png"])

    class Store:
        path = tmp_path

        def get_offers(self, ids):
            return {i: records[i] for i in ids if i in records}

    class Groups:  # each offer its own product
        def product_of(self, ids):
            return {i: 100 + i for i in ids}

    return SearchService(Store(), Groups(), ocr=False, images_root=tmp_path)


def test_the_photo_search_reads_the_offers_the_rest_of_the_shot_found_and_matches_them(
    tmp_path, pasted_scene
):
    """`SearchService`'s keypoint check with the offers' photos on disk: the astronaut's offer,
    found only by the rest of the shot, is read from the store and its photo verified."""
    shot, gallery = pasted_scene
    service = _photo_service(tmp_path, gallery)
    ranked = service._verify(shot, PASTED_HITS[:3], lambda box: PASTED_REST)
    assert ranked[0][0] == 0 and dict(ranked)[1] == 0.80


def test_an_offer_the_rest_of_the_shot_found_but_since_removed_is_not_matched(
    tmp_path, pasted_scene
):
    """The rest's hits come from the vector index, the records from the store: an offer removed
    in between has no record and no photo to match, and the query still answers."""
    shot, gallery = pasted_scene
    service = _photo_service(tmp_path, gallery, removed={0})
    hits = PASTED_HITS[:3]
    ranked = service._verify(shot, hits, lambda box: PASTED_REST)
    assert ranked[0][0] == 1 and 0 not in dict(ranked)  # the camera man keeps its keypoints


def _shop_sized(name: str) -> Image.Image:
    """A scikit-image photograph at the size of the real shop photos (218 x 255)."""
    from skimage import data

    array = np.asarray(getattr(data, name)())
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(array[..., :3]).resize((218, 255))


def test_a_close_up_of_a_smooth_real_photo_verifies_by_the_low_threshold_redetection(
    monkeypatch,
):
    """The retina photo at a shop photo's size has few FAST corners at the usual threshold and a
    close-up of it almost none, so nothing matched; both are detected again at the low threshold
    (`FEW_KEYPOINTS`) and the close-up verifies its photo, and not another smooth photo."""
    from cumpair.search import verify

    photo, other = _shop_sized("retina"), _shop_sized("clock")
    width, height = photo.size
    close_up = photo.crop(
        (int(0.2 * width), int(0.2 * height), int(0.78 * width), int(0.78 * height))
    )
    verifier = GeometricVerifier()
    query = verifier.features(close_up)
    assert len(verifier.match(query, verifier.features(photo)).keypoints) >= MIN_INLIERS
    assert verifier.match(query, verifier.features(other)) == UNMATCHED

    monkeypatch.setattr(verify, "FEW_KEYPOINTS", 0)
    usual = GeometricVerifier()
    assert usual.match(usual.features(close_up), usual.features(photo)) == UNMATCHED


@pytest.mark.skipif(not SHOP_PHOTOS.is_dir(), reason="../shared/data/real is not here")
def test_a_photo_under_half_the_shots_side_gives_way_only_to_what_the_rests_keypoints_verify(
    verifier, monkeypatch
):
    """A real shop photo of trousers with another shop photo (a printed top) pasted over its
    top-left 0.6 x 0.6: the trousers, smooth, show few keypoints, so the pasted photo's span
    two thirds of the box of them all and pass the span test; but its photo appears at 0.6 of
    the shot's side, under `MINORITY_APPARENT`, so the size rule asks the rest of the shot.
    The rest's cosine to the trousers is no evidence there (a plain backdrop matches any
    plain-backdrop photo as well): the pasted photo stays first. Only keypoints of the rest
    that verify the trousers, larger in the shot, explain it away."""
    from cumpair.search import verify

    trousers, top = (
        Image.open(SHOP_PHOTOS / n).convert("RGB") for n in ("shop_00450.jpg", "shop_00684.jpg")
    )
    shot = trousers.copy()
    shot.paste(top.resize((int(shot.width * 0.6), int(shot.height * 0.6))), (0, 0))
    gallery = {0: trousers, 1: top, 2: _shop_sized("coffee")}
    features = {n: verifier.features(p) for n, p in gallery.items()}
    query = verifier.features(shot)
    hits = [(1, 0.73), (0, 0.64), (2, 0.55)]
    evidence = keypoint_evidence(verifier, query, hits, features.__getitem__, len(hits))
    fused = fused_hits(hits, evidence, query)
    assert fused[0][0] == 1 and keypoint_span(query, evidence[1]) >= MINORITY_SPAN
    assert verifier.match(query, features[1]).apparent < MINORITY_APPARENT

    rest = [(0, 0.72), (2, 0.5), (1, 0.45)]  # the rest of the shot is of the trousers

    def real_match(f, offer_id):
        return verifier.match(f, features[offer_id])

    def rest_verifies_trousers(f, offer_id):
        if f is not query and offer_id == 0:
            return Match(frozenset(range(MIN_INLIERS)), 1.0)
        return real_match(f, offer_id)

    def ranked(match_offer):
        return explain_away(
            hits, fused, evidence, query, query.size, lambda box: rest, match_offer=match_offer
        )

    assert real_match(query, 0) == UNMATCHED  # the shot's few trousers keypoints verify nothing
    assert ranked(real_match) == fused
    explained = ranked(rest_verifies_trousers)
    assert explained[0] == (0, fused[0][1]) and dict(explained)[1] == 0.73
    monkeypatch.setattr(verify, "MINORITY_APPARENT", 0.0)  # the span test alone
    assert ranked(rest_verifies_trousers) == fused


@pytest.mark.skipif(not SHOP_PHOTOS.is_dir(), reason="../shared/data/real is not here")
def test_a_photo_half_covered_by_another_known_photo_is_not_taken_for_a_corner(verifier):
    """A real shop photo (shop_00348) with another shop photo (trousers, shop_00450) pasted over
    its top-left 0.6 x 0.6, as bench/eval_retrieval.py's occlusion does: the photo's keypoints
    stay off the cover, in a box under `MINORITY_SPAN` of the one all the shot's keypoints
    fill, and the rest of the shot outside that box, mostly the cover, matches the cover's
    photo by its cosine. But the photo appears at the shot's whole side (`Match.apparent`),
    over `MINORITY_APPARENT`: it is what the shot is of, and stays first."""
    photo, cover = (
        Image.open(SHOP_PHOTOS / n).convert("RGB") for n in ("shop_00348.jpg", "shop_00450.jpg")
    )
    shot = photo.copy()
    shot.paste(cover.resize((int(shot.width * 0.6), int(shot.height * 0.6))), (0, 0))
    gallery = {0: photo, 1: cover, 2: _shop_sized("coffee")}
    features = {n: verifier.features(p) for n, p in gallery.items()}
    query = verifier.features(shot)
    hits = [(0, 0.70), (1, 0.62), (2, 0.50)]
    evidence = keypoint_evidence(verifier, query, hits, features.__getitem__, len(hits))
    fused = fused_hits(hits, evidence, query)
    assert fused[0][0] == 0 and keypoint_span(query, evidence[0]) < MINORITY_SPAN
    assert verifier.match(query, features[0]).apparent >= MINORITY_APPARENT
    rest = [(1, 0.80), (2, 0.50), (0, 0.45)]  # the rest of the shot: mostly the cover

    def ranked(match_offer):
        return explain_away(
            hits, fused, evidence, query, query.size, lambda box: rest, match_offer=match_offer
        )

    assert ranked(lambda f, offer_id: verifier.match(f, features[offer_id])) == fused
    # Without a matcher to ask the size, the span test alone still explains it away.
    assert ranked(None)[0][0] == 1


@pytest.mark.skipif(not SHOP_PHOTOS.is_dir(), reason="../shared/data/real is not here")
def test_a_known_photo_cut_off_by_the_shots_edge_is_still_taken_for_a_corner(verifier):
    """A real shop photo (shop_00288) at the whole shot's size, pushed off its bottom-right
    corner so that only 0.6 x 0.6 of it is in view, beside the product the shot is of (another
    shop photo, shop_00216, mirrored: its cosine still finds it, its keypoints do not). The cut
    photo's keypoints sit in that corner, under `MINORITY_SPAN`, and its whole photo appears at
    the shot's side (`Match.apparent`), but only the part inside the shot is seen
    (`Match.visible`): it is a corner, and the rest's cosine names the product."""
    product, known = (
        Image.open(SHOP_PHOTOS / n).convert("RGB") for n in ("shop_00216.jpg", "shop_00288.jpg")
    )
    shot = Image.fromarray(data.brick()).convert("RGB").resize((640, 480))
    side = 300 / max(product.size)
    small = product.resize((int(product.width * side), int(product.height * side)))
    shot.paste(small.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (60, 90))
    shot.paste(known.resize(shot.size), (int(640 * 0.4), int(480 * 0.4)))
    features = {0: verifier.features(product), 1: verifier.features(known)}
    query = verifier.features(shot)
    hits = [(1, 0.62), (0, 0.60)]
    evidence = keypoint_evidence(verifier, query, hits, features.__getitem__, len(hits))
    fused = fused_hits(hits, evidence, query)
    assert fused[0][0] == 1 and keypoint_span(query, evidence[1]) < MINORITY_SPAN
    cut = verifier.match(query, features[1])
    assert cut.apparent >= MINORITY_APPARENT > cut.visible
    ranked = explain_away(
        hits,
        fused,
        evidence,
        query,
        query.size,
        lambda box: [(0, 0.80), (1, 0.40)],
        match_offer=lambda f, offer_id: verifier.match(f, features[offer_id]),
    )
    assert ranked[0][0] == 0


#: Real shop photos, each on a plain white backdrop as most shops' photos are.
WHITE_BACKDROP_SHOP = (
    "shop_00840.jpg",
    "shop_00096.jpg",
    "shop_00792.jpg",
    "shop_00606.jpg",
    "shop_00822.jpg",
    "shop_00612.jpg",
    "shop_00432.jpg",
    "shop_00348.jpg",
    "shop_00618.jpg",
    "shop_00060.jpg",
)


@pytest.mark.slow
@pytest.mark.skipif(not SHOP_PHOTOS.is_dir(), reason="../shared/data/real is not here")
def test_a_real_product_filling_half_a_plain_shot_is_not_taken_for_a_corner(tmp_path):
    """A shopper's shot of a real product (shop_00840) at half the shot's side on a white
    table: its keypoints span the shot (the backdrop has none) but its photo appears at under
    `MINORITY_APPARENT` of the side, so the size rule asks the rest of the shot; that rest is
    plain white and its pooled vector matches other white-backdrop shop photos at REST_MATCH
    or more. That is no other product: the search, through `SearchService.search_image` over a
    real store, keeps the photographed product first."""
    from cumpair.embed import load_encoders
    from cumpair.embed.reindex import spaces_for
    from cumpair.index import ProductStore, StoreOptions
    from cumpair.index.records import OfferRecord
    from cumpair.search.service import SearchService

    encoders = load_encoders("offline")
    photos = [Image.open(SHOP_PHOTOS / name).convert("RGB") for name in WHITE_BACKDROP_SHOP]
    vectors = encoders.image.encode_images(photos)
    store = ProductStore.open(
        tmp_path, spaces_for(encoders), StoreOptions(duplicate_threshold=None)
    )
    ids = []
    for n, (name, vector) in enumerate(zip(WHITE_BACKDROP_SHOP, vectors, strict=True)):
        (tmp_path / f"{n}.jpg").write_bytes((SHOP_PHOTOS / name).read_bytes())
        record = OfferRecord(shop="real", url=f"https://shop.test/{n}", image_paths=(f"{n}.jpg",))
        ids.append(store.upsert(record, {"image": vector[None, :]}).offer_id)

    class Groups:  # no offer grouped yet: each stands alone, as its own product
        def product_of(self, offer_ids):
            return {}

    shot = Image.new("RGB", (640, 480), (246, 246, 244))
    product = photos[0].resize((int(photos[0].width * 240 / photos[0].height), 240))
    shot.paste(product, ((640 - product.width) // 2, (480 - product.height) // 2))
    service = SearchService(
        store, Groups(), encoder_loader=lambda: encoders, ocr=False, images_root=tmp_path
    )
    try:
        response = service.search_image(shot, k=3)
    finally:
        store.close()
    assert [p.product_id for p in response.products][:1] == [-ids[0]]


class _CountingMatcher:
    """A real BFMatcher that counts its knnMatch calls."""

    def __init__(self, matcher) -> None:
        self.matcher, self.calls = matcher, 0

    def knnMatch(self, *args, **kwargs):
        self.calls += 1
        return self.matcher.knnMatch(*args, **kwargs)


def test_the_best_hit_is_not_matched_again_to_ask_how_large_it_appears(catalog):
    # `explain_away` asks `match_offer(query, best)` for the best hit's apparent size, a pair
    # `keypoint_evidence` has just matched: the same Features objects are matched once.
    verifier = GeometricVerifier()
    verifier._matcher = counting = _CountingMatcher(verifier._matcher)
    product = catalog.products[0].product_id
    photo = render_product_photo(catalog.offers_for_product(product)[0])
    query = verifier.features(crop(photo, random.Random(3)))
    candidate = verifier.features(photo)
    first = verifier.match(query, candidate)
    assert len(first.keypoints) >= MIN_INLIERS and first.apparent > 0
    assert verifier.match(query, candidate) == first and counting.calls == 1
    assert verifier.matched_keypoints(query, candidate) == first.keypoints
    assert counting.calls == 1
    # An equal copy of the query's features is another query: matched anew.
    copy = query._replace(points=list(query.points))
    assert verifier.match(copy, candidate) == first and counting.calls == 2


def test_a_photos_features_cannot_change_under_a_kept_match(catalog):
    # `match` keeps the last pairs' matches by identity: features changed in place would be
    # answered with the match of what they were.
    verifier = GeometricVerifier()
    photo = render_product_photo(catalog.offers_for_product(catalog.products[0].product_id)[0])
    features = verifier.features(photo)
    assert len(features.points) >= MIN_INLIERS
    with pytest.raises(ValueError, match="read-only"):
        features.descriptors[0, 0] ^= 1
    with pytest.raises(TypeError):
        features.points[0] = (0.0, 0.0)


@pytest.mark.skipif(not SHOP_PHOTOS.is_dir(), reason="../shared/data/real is not here")
def test_a_photo_rewritten_at_the_same_path_is_verified_by_its_new_keypoints(tmp_path):
    # Scrapy stores a downloaded image under the SHA-1 of its URL: a recrawl that finds a new
    # photo at the same URL rewrites the same file, and a long-running server's cache must not
    # keep matching the old photo's keypoints.
    old, new = (
        Image.open(SHOP_PHOTOS / name).convert("RGB")
        for name in ("shop_00000.jpg", "shop_00006.jpg")
    )
    verifier = GeometricVerifier()
    stored = tmp_path / "full" / "0a1b2c3d.jpg"
    stored.parent.mkdir()
    old.save(stored)
    before = verifier.features_of_file(str(stored))
    assert verifier.features_of_file(str(stored)) is before  # cached while the file stands
    new.save(stored)
    after = verifier.features_of_file(str(stored))
    assert after is not before
    assert after.points == verifier.features(Image.open(stored)).points
    assert verifier.inliers(verifier.features(new), after) >= MIN_INLIERS
    assert verifier.inliers(verifier.features(new), before) < MIN_INLIERS


def test_a_right_photo_the_vector_ranked_25th_within_reach_is_matched_and_lifted_first(verifier):
    # A shop photo under a pasted real photo: its own cosine can fall within reach of the best
    # (0.10 below, on real photos) yet rank below the 20th hit among look-alike shop photos
    # (bench/eval_retrieval.py --split in: two of 13 full-search misses, at ranks 3 and 25). The
    # photo search's default candidate list is deep enough to match it.
    from cumpair.search.augment import Scene, occlusion
    from cumpair.search.service import VERIFY_CANDIDATES

    photos = [Image.open(path).convert("RGB") for path in sorted(SHOP_PHOTOS.glob("*.jpg"))[:30]]
    right = 24
    cover = Image.fromarray(data.coffee()).convert("RGB")
    shot = occlusion(photos[right], random.Random(3), Scene([], [cover]))
    query = verifier.features(shot)
    features = [verifier.features(photo) for photo in photos]
    hits = [(row, 0.75 - 0.003 * row) for row in range(len(photos))]
    ranked = verified_hits(verifier, query, hits, features.__getitem__, VERIFY_CANDIDATES)
    assert hits[right][1] >= hits[0][1] - KEYPOINT_REACH
    assert ranked[0][0] == right, ranked[:3]


def test_a_smooth_photo_under_a_pasted_one_wins_on_its_many_inliers_from_0_21_below(verifier):
    """skimage's moon half under its coffee (bench/eval_retrieval.py --split in, seed 2): the
    pasted photo's cosine to the shot (0.68) beats the moon's (0.47), and both verify above
    `KEYPOINT_SATURATION`, the cover in a corner, the moon across the shot. The moon must be
    within reach, and its inliers must count above saturation, to come first."""
    from cumpair.search.augment import Scene, occlusion

    moon, coffee = (Image.fromarray(d()).convert("RGB") for d in (data.moon, data.coffee))
    shot = occlusion(moon, random.Random(1), Scene([], [coffee]))
    features = [verifier.features(coffee), verifier.features(moon)]
    hits = [(0, 0.68), (1, 0.47)]
    ranked = verified_hits(verifier, verifier.features(shot), hits, features.__getitem__, 40)
    assert ranked[0][0] == 1, ranked
