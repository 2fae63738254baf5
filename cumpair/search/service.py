"""Answer queries: a photo, a text or a GTIN in, products with every shop's offer out.

One `SearchService` per process holds the store, the grouping and the encoders (loaded on the
first query that needs them, once); the CLI builds one per run, `cumpair serve` one for its
lifetime. A photo query is embedded as taken and as the product's salient box
(`cumpair.embed.query`), its best hits' scores fused with keypoint evidence (`verify`), a
known photo in a corner of the shot explained away by searching the rest of the shot
(`verify.explain_away`), and OCR'd too: a GTIN, model code or brand read from the photo lifts
the products that carry it.

GTIN look-ups and price histories read rows only (the CLI gives them a store's `OfferRows`):
numpy and the text features are imported by the queries that use them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from cumpair.identifiers import normalize_gtin
from cumpair.index.records import SearchFilters
from cumpair.search.products import ProductGroups
from cumpair.search.ranking import ProductHit, QueryFacts, price_flags, rank_products, rerank
from cumpair.search.store_scan import find_by_url, space_specs
from cumpair.search.views import ProductView, cheapest_first, key_specs, offer_view

logger = logging.getLogger(__name__)

OVERSAMPLE = 5  # offers fetched per product asked for: a product holds up to ~4 offers
# A photo query is read once by the most accurate engine on photographed text, not the whole
# fallback chain: most product photos carry no text, and each engine tried costs a second.
PHOTO_OCR_ENGINES = ("rapidocr",)
# Photo hits whose score may be fused with keypoint matches (see `verify`, which matches only
# those within reach of the best). A shop photo under a pasted real photo can score within
# reach of the best hit yet rank 25th among look-alike photos: on real photos
# (bench/eval_retrieval.py --split in, seeds 1-3, 666 queries) 40 found 655 first against 653
# at 20, and lost none (10: 0.004 less than 20). Each candidate matched costs a few ms; the
# photo query's latency target is 0.3 s at the median (bench/bench_search.py).
VERIFY_CANDIDATES = 40
_DIGITS = re.compile(r"\d[\d\s-]{6,16}\d")


class QueryError(ValueError):
    """A query that cannot be answered as asked (no input, bad GTIN, unknown product)."""


@dataclass
class SearchResponse:
    """What a query found; `facts` are what OCR read from a photo query; `stages`: seconds a
    photo query spent per stage (decode, views, embedding, search, keypoints, rest), not part of
    `to_dict` (for benchmarks and logs)."""

    query: dict[str, Any]
    products: list[ProductView]
    facts: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "facts": self.facts,
            "products": [p.to_dict() for p in self.products],
        }


def facts_from_text(text: str) -> QueryFacts:
    """GTINs, model codes and brand stated in `text` (a query string or OCR of a photo)."""
    from cumpair.search.features import canonical_code, model_codes
    from cumpair.vision.specs import extract_specs

    specs = extract_specs(text)
    gtin = specs.gtin
    if gtin is None:
        for match in _DIGITS.finditer(text):
            gtin = normalize_gtin(match.group(0))
            if gtin:
                break
    models = set(model_codes(text))
    if specs.model and len(canonical_code(specs.model)) >= 3:
        models.add(canonical_code(specs.model))
    brand = " ".join(specs.brand.lower().split()) if specs.brand else None
    return QueryFacts(gtin=gtin, models=frozenset(models), brand=brand)


class SearchService:
    """Queries over one `ProductStore` and its `ProductGroups`."""

    def __init__(
        self,
        store: Any,
        groups: ProductGroups,
        *,
        encoder_loader: Callable[[], Any] | None = None,
        ocr: bool = True,
        images_root: str | Path | None = None,
        verify_candidates: int = VERIFY_CANDIDATES,
        query_views: bool = True,
    ) -> None:
        """`images_root`: where offers' `image_paths` live (default: the store's ``images``);
        `verify_candidates`: photo hits checked by keypoint matching (0 turns it off);
        `query_views`: embed a photo query's salient box too (twice the model work of the
        photo alone, for recall on small products in a wider shot)."""
        self.store = store
        self.groups = groups
        self.ocr = ocr
        self.images_root = Path(images_root) if images_root else Path(store.path) / "images"
        self.verify_candidates = verify_candidates
        self.query_views = query_views
        self._verifier = None
        self._encoder_loader = encoder_loader or _default_encoders
        self._encoders: Any = None
        self._lock = threading.Lock()

    @property
    def encoders(self) -> Any:
        """The encoder set, loaded on first use and checked against the store's spaces."""
        with self._lock:
            if self._encoders is None:
                encoders = self._encoder_loader()
                _check_spaces(self.store, encoders)
                self._encoders = encoders
            return self._encoders

    @property
    def encoders_loaded(self) -> bool:
        return self._encoders is not None

    # ------------------------------------------------------------------ queries
    def search_image(
        self,
        image: Any,
        *,
        k: int = 5,
        shops: tuple[str, ...] | None = None,
        max_price: Decimal | None = None,
        explain: bool = False,
    ) -> SearchResponse:
        """Products whose photos look like `image` (path, bytes or PIL image), re-ranked by OCR."""
        from cumpair.embed.query import (
            best_over_views,
            embed_views,
            first_pass,
            own_match_trust,
            vector_outside,
        )
        from cumpair.vision.images import load_image

        clock = _StageClock()
        picture = load_image(image)  # ImageError on bad input, before any model loads
        clock.lap("decode")
        encoder = self.encoders.image
        clock.lap("rest")  # loading the encoders, once per process
        # The photo as taken, and its product's salient box read off the same forward pass;
        # the box is embedded and searched only when the photo's own hits leave it a say
        # (`cumpair.embed.query.own_match_trust`): most photos that match well skip it.
        start = first_pass(encoder, picture, views=self.query_views, lap=clock.lap)
        per_offer = max(k, self.verify_candidates // OVERSAMPLE)
        found = self._vector_hit_lists("image", start.vector, per_offer, shops, max_price)
        views = [start.view]
        clock.lap("search")
        own_best = found[0][0][1] if found[0] else 0.0
        if start.others and own_match_trust(own_best) > 0:
            others, vectors = embed_views(encoder, start.others, lap=clock.lap)
            if others:
                found += self._vector_hit_lists("image", vectors, per_offer, shops, max_price)
                views += others
        hits = best_over_views(found, views)
        clock.lap("search")

        def rest_hits(box: tuple[float, float, float, float]) -> list[tuple[int, float]]:
            """Hits of the shot outside `box` (`verify.explain_away`), from the photo's own
            feature map: no forward pass, one search."""
            vector = None if start.feature_map is None else vector_outside(start.feature_map, box)
            if vector is None:
                return []
            return self._vector_hit_lists("image", vector, per_offer, shops, max_price)[0]

        hits = self._verify(picture, hits, rest_hits)
        clock.lap("keypoints")
        facts = self._read_photo(picture) if self.ocr else QueryFacts()
        ranked = self._with_facts(rank_products(hits, self._products_of(hits)), facts)
        query = {"image": True, "k": k, "shops": shops, "max_price": _money(max_price)}
        response = self._respond(query, ranked, k, shops, max_price, explain, facts)
        clock.lap("rest")
        response.stages = clock.stages
        return response

    def search_text(
        self,
        text: str,
        *,
        k: int = 5,
        shops: tuple[str, ...] | None = None,
        max_price: Decimal | None = None,
        explain: bool = False,
    ) -> SearchResponse:
        """Products whose text matches `text`; a GTIN or model code in it is matched exactly."""
        if not text or not text.strip():
            raise QueryError("the text query is empty")
        encoders = self.encoders
        hits = self._vector_hits("text", encoders.text.encode_texts([text]), k, shops, max_price)
        if encoders.text_to_image is not None:  # CLIP: a text query searches photos too
            photo = encoders.text_to_image.encode_texts([text])
            hits += self._vector_hits("image", photo, k, shops, max_price)
        facts = facts_from_text(text)
        ranked = self._with_facts(rank_products(hits, self._products_of(hits)), facts)
        query = {"text": text, "k": k, "shops": shops, "max_price": _money(max_price)}
        return self._respond(query, ranked, k, shops, max_price, explain, facts)

    def search_gtin(
        self,
        gtin: str,
        *,
        k: int = 5,
        shops: tuple[str, ...] | None = None,
        max_price: Decimal | None = None,
        explain: bool = False,
    ) -> SearchResponse:
        """The product(s) carrying `gtin` (any of EAN-13, UPC-A, GTIN-14 forms)."""
        canonical = normalize_gtin(gtin)
        if canonical is None:
            raise QueryError(f"{gtin!r} is not a valid GTIN (length or check digit)")
        ranked = [
            ProductHit(pid, 1.0, 0, [f"GTIN {canonical}"])
            for pid in self.groups.products_with_gtin(canonical)
        ]
        query = {"gtin": canonical, "k": k, "shops": shops, "max_price": _money(max_price)}
        return self._respond(query, ranked, k, shops, max_price, explain, QueryFacts())

    def product(self, product_id: int, *, explain: bool = False) -> ProductView:
        """One product with all its offers, cheapest first."""
        view = self._product_view(ProductHit(product_id, 0.0, 0), None, None, explain)
        if view is None:
            raise QueryError(f"no product {product_id}")
        view.score = None
        return view

    def history(self, reference: str) -> list[tuple[Any, list[Any]]]:
        """(offer record, price history) for a product id or an offer URL, cheapest first."""
        reference = reference.strip()
        if reference.isdigit():
            offer_ids = self.groups.offers_of(int(reference))
        else:
            offer_ids = self.groups.offers_with_url(reference) or find_by_url(self.store, reference)
        if not offer_ids:
            raise QueryError(f"no product or offer URL {reference!r} in the index")
        records = self.store.get_offers(offer_ids)
        rows = [(records[i], self.store.price_history(i)) for i in offer_ids if i in records]
        return sorted(rows, key=lambda row: (row[0].price is None, row[0].price or 0))

    # ------------------------------------------------------------------ internals
    def _vector_hits(self, space, vectors, k, shops, max_price) -> list[tuple[int, float]]:
        return self._vector_hit_lists(space, vectors[:1], k, shops, max_price)[0]

    def _vector_hit_lists(
        self, space, vectors, k, shops, max_price
    ) -> list[list[tuple[int, float]]]:
        """(offer id, score) hits of each query vector (row of `vectors`)."""
        import numpy as np

        filters = None
        if shops or max_price is not None:
            filters = SearchFilters(shops=tuple(shops) if shops else None, max_price=max_price)
        found = self.store.search(space, np.asarray(vectors), k=k * OVERSAMPLE, filters=filters)
        return [[(hit.offer_id, hit.score) for hit in row] for row in found]

    def _verify(
        self,
        picture: Any,
        hits: list[tuple[int, float]],
        rest_hits: Callable[[tuple[float, float, float, float]], list[tuple[int, float]]],
    ) -> list[tuple[int, float]]:
        """Re-rank photo hits by their cosine fused with keypoint matches with the offers'
        photos on disk (`verify.fused_score`), a second known photo in a corner of the shot
        explained away (`verify.explain_away`, which searches `rest_hits` of the rest of the
        shot and may match its keypoints with the photos of the offers found). Nothing is
        matched, not even the query's own keypoints, when the best hit's margin is decisive
        (`verify.contenders`) or every contender is an offer of one product (keypoints could
        change no product's rank: a product scores its best offer's)."""
        from cumpair.search.verify import (
            Features,
            GeometricVerifier,
            Match,
            contenders,
            explain_away,
            frame_size,
            fused_hits,
            keypoint_evidence,
            resolve_photo,
        )

        close = contenders(hits, self.verify_candidates) if self.verify_candidates else []
        if len(close) < 2:
            return hits
        # Keypoints that verify offers of two products are evidence for neither (`verify`).
        product_of = self._products_of(hits[: self.verify_candidates])

        def group_of(offer_id: int) -> int:
            product = product_of.get(offer_id)
            return -offer_id if product is None else product

        if len({group_of(offer_id) for offer_id, _ in close}) < 2:
            return hits

        with self._lock:
            if self._verifier is None:
                self._verifier = GeometricVerifier()
        verifier = self._verifier
        records = self.store.get_offers(o for o, _ in hits[: self.verify_candidates])

        def features_of(offer_id: int):
            path = resolve_photo(records.get(offer_id), self.images_root)
            return None if path is None else verifier.features_of_file(path)

        def grouped_rest_hits(box: tuple[float, float, float, float]) -> list[tuple[int, float]]:
            found = rest_hits(box)
            product_of.update(self._products_of(found))
            return found

        def match_offer(features: Features, offer_id: int) -> Match:
            if offer_id not in records:  # an offer the rest of the shot found
                records.update(self.store.get_offers([offer_id]))
            return verifier.match(features, features_of(offer_id))

        query = verifier.features(picture)
        evidence = keypoint_evidence(
            verifier, query, hits, features_of, self.verify_candidates, group_of=group_of
        )
        fused = fused_hits(hits, evidence, query)
        frame = frame_size(picture.size)
        return explain_away(
            hits, fused, evidence, query, frame, grouped_rest_hits, group_of, match_offer
        )

    def _products_of(self, hits: list[tuple[int, float]]) -> dict[int, int]:
        return self.groups.product_of(offer_id for offer_id, _ in hits)

    def _read_photo(self, picture: Any) -> QueryFacts:
        """What OCR reads in a photo query, read only when it shows a text line (the crawl's
        text gate, RapidOCR's detector alone): most product photos show none, and on them a
        first query's OCR, models loaded, took 1.5-1.8 CPU s with the gate against 2.0-2.5 for
        the full read (textless real shop photos, which it read as noise like "M" or "1")."""
        import numpy as np

        from cumpair.vision.engines import EngineUnavailableError
        from cumpair.vision.ocr import OcrUnavailableError, recognize
        from cumpair.vision.ocr_types import OcrOptions
        from cumpair.vision.text_gate import has_text_lines

        try:
            if not has_text_lines(np.asarray(picture)):
                return QueryFacts()
            text = recognize(picture, OcrOptions(engines=PHOTO_OCR_ENGINES, max_variants=1)).text
        except (EngineUnavailableError, OcrUnavailableError) as exc:
            logger.warning("photo query not OCR'd: %s", exc)
            return QueryFacts()
        return facts_from_text(text) if text.strip() else QueryFacts()

    def _with_facts(self, ranked: list[ProductHit], facts: QueryFacts) -> list[ProductHit]:
        """Add products the facts name exactly (even if no vector found them), then re-rank."""
        if not facts:
            return ranked
        present = {hit.product_id for hit in ranked}
        exact = self.groups.products_with_gtin(facts.gtin) if facts.gtin else []
        for code in sorted(facts.models):
            exact += self.groups.products_with_model(code)
        for product_id in exact:
            if product_id not in present:
                ranked.append(ProductHit(product_id, 0.0, 0))
                present.add(product_id)
        known = [h.product_id for h in ranked if h.product_id > 0]
        return rerank(ranked, facts, self.groups.identity_facts(known))

    def _respond(self, query, ranked, k, shops, max_price, explain, facts) -> SearchResponse:
        products = []
        for hit in ranked:
            view = self._product_view(hit, shops, max_price, explain)
            if view is not None:
                products.append(view)
            if len(products) == k:
                break
        read = {
            "gtin": facts.gtin,
            "models": sorted(facts.models),
            "brand": facts.brand,
        }
        return SearchResponse(query, products, {k_: v for k_, v in read.items() if v})

    def _product_view(self, hit, shops, max_price, explain) -> ProductView | None:
        if hit.product_id > 0:
            product = self.groups.product(hit.product_id)
            if product is None:
                return None
            offer_ids = self.groups.offers_of(hit.product_id)
        else:  # an offer not grouped yet stands alone
            product, offer_ids = None, [-hit.product_id]
        records = self.store.get_offers(offer_ids)
        histories = {offer_id: self.store.price_history(offer_id) for offer_id in records}
        # A price is judged among all the product's offers, before the filters drop some, and
        # against its own history.
        judged = price_flags(list(records.values()), list(histories.values()))
        flags = dict(zip(records, judged, strict=True))
        views = []
        for offer_id, record in records.items():
            if shops and record.shop not in shops:
                continue
            if max_price is not None and (record.price is None or record.price > max_price):
                continue
            explanation = None
            if explain:
                membership = self.groups.membership(offer_id)
                explanation = (
                    {"rule": "ungrouped"}
                    if membership is None
                    else {
                        "rule": membership.rule,
                        "score": round(membership.score, 4),
                        "matched_offer": membership.matched_offer,
                        **membership.evidence,
                    }
                )
            views.append(offer_view(record, histories[offer_id], explanation))
        if not views:
            return None
        first = records[min(records)]
        return ProductView(
            product_id=hit.product_id,
            title=product.title if product else first.title,
            brand=product.brand if product else first.brand,
            model=product.model if product else first.model,
            gtin=product.gtin if product else first.gtin,
            specs=key_specs(records.values()),
            offers=cheapest_first(views, [flags[v.offer_id] for v in views]),
            score=hit.score,
            reasons=list(hit.reasons),
        )


class _StageClock:
    """Seconds spent per named stage of one query (a stage named twice adds up)."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + now - self._last
        self._last = now


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _default_encoders() -> Any:
    from cumpair.embed import load_encoders

    return load_encoders("auto")


def _check_spaces(store: Any, encoders: Any) -> None:
    """Refuse to query a space with vectors of another encoder (scores would be noise)."""
    specs = space_specs(store)
    for space, info in (("image", encoders.image_info), ("text", encoders.text_info)):
        spec = specs.get(space)
        if spec is not None and (spec.encoder.casefold(), spec.dim) != (
            info.name.casefold(),
            info.dim,
        ):
            raise QueryError(
                f"the index's {space} space was built with {spec.encoder} ({spec.dim}-d) but "
                f"the loaded encoder is {info.name} ({info.dim}-d): choose matching --encoders"
            )
