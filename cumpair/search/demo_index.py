"""Load the demo catalog straight into a store and group it, as a crawl of the demo shops would.

For the evaluation, the benchmarks and tests: the records are what the spiders extract (title,
price, brand, model, printed GTIN, specs read from the page text) and the vectors what the
pipeline embeds (the shop's product photo; the product text), without running the crawl.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from cumpair.identifiers import normalize_gtin
from cumpair.index.records import OfferRecord

DEMO_PORT = 8070


def demo_url(offer: Any, port: int = DEMO_PORT) -> str:
    from cumpair.demo.catalog import SHOP_HOSTS

    return f"http://{SHOP_HOSTS[offer.shop]}:{port}{offer.url_path}"


def demo_offer_record(
    offer: Any,
    *,
    port: int = DEMO_PORT,
    price: Decimal | None = None,
    seen_at: datetime | None = None,
) -> OfferRecord:
    """The `OfferRecord` a crawl stores for a demo offer (`price` overrides the catalog's)."""
    from cumpair.vision.specs import extract_specs

    specs = extract_specs(f"{offer.title}\n{offer.description}").to_dict()
    specs.pop("raw", None)
    specs.pop("model", None)  # page copy is not where a crawl reads the model: markup is
    return OfferRecord(
        shop=offer.shop,
        url=demo_url(offer, port),
        title=offer.title,
        price=offer.price if price is None else price,
        currency=offer.currency,
        availability=offer.availability,
        brand=offer.product.brand,
        model=offer.product.model,
        sku=offer.sku,
        gtin=normalize_gtin(offer.gtin_printed),
        category=offer.product.category,
        specs=specs,
        seen_at=seen_at,
    )


def demo_photo_path(offer: Any) -> str:
    """Where `index_demo_offers(write_photos=True)` saves an offer's photo, under the store's
    ``images`` directory (the images pipeline's ``full/`` layout)."""
    return f"full/{offer.shop}-{offer.photo_name.rsplit('.', 1)[0]}.png"


def demo_vectors(offers: Sequence[Any], encoders: Any, batch: int = 32) -> list[dict[str, Any]]:
    """Per offer, {"image": photo vector, "text": product-text vector} from real encoders."""
    from cumpair.demo.images import render_product_photo
    from cumpair.embed import product_text

    out: list[dict[str, Any]] = []
    for start in range(0, len(offers), batch):
        chunk = offers[start : start + batch]
        images = encoders.image.encode_images([render_product_photo(o) for o in chunk])
        texts = encoders.text.encode_texts(
            [product_text(vars(demo_offer_record(o))) for o in chunk]
        )
        pairs = zip(images, texts, strict=True)
        out += [{"image": i[None, :], "text": t[None, :]} for i, t in pairs]
    return out


def index_demo_offers(
    store: Any,
    groups: Any,
    offers: Sequence[Any],
    vectors: Sequence[dict[str, Any]] | None = None,
    *,
    seen_at: datetime | None = None,
    write_photos: bool = False,
) -> dict[int, Any]:
    """Upsert `offers` and group each as the pipeline does; returns store offer id -> offer.

    `write_photos` saves each offer's photo under ``<store>/images/full/`` as the images
    pipeline does, with `image_paths` relative to ``<store>/images``.
    """
    by_id = {}
    for n, offer in enumerate(offers):
        offer_vectors = vectors[n] if vectors is not None else {}
        record = demo_offer_record(offer, seen_at=seen_at)
        if write_photos:
            from cumpair.demo.images import render_product_photo

            relative = demo_photo_path(offer)
            target = Path(store.path) / "images" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            render_product_photo(offer).save(target)
            record.image_paths = (relative,)
        result = store.upsert(record, offer_vectors)
        groups.assign(store, result.offer_id, offer_vectors)
        by_id[result.offer_id] = offer
    return by_id
