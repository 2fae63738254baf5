"""Product photos and label images of the demo shops, rendered on demand from the catalog.

A photo is the product's clip-art framed the shop's way (background, scale, offset, rotation),
so the same product looks like the same object at every shop; a label prints the product's
facts as text and comes with its ground truth in the spec output contract of
`cumpair.vision.specs`. Rendering is deterministic; encoded bytes are cached.
"""

from __future__ import annotations

import functools
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cumpair.demo.catalog import Catalog, DemoOffer, DemoProduct
from cumpair.identifiers import normalize_gtin

PHOTO_SIZE = 480
LABEL_SIZE = (640, 360)
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
GRAMS_PER_POUND = 453.59237
GRAMS_PER_OUNCE = 28.349523125
MM_PER_INCH = 25.4
# Shops that print imperial units on their labels (lb/oz and inches).
IMPERIAL_SHOPS = frozenset({"bluepeak"})


class ImageRenderError(RuntimeError):
    """A demo image cannot be rendered (missing clip-art or font)."""


@dataclass(frozen=True)
class PhotoStyle:
    """How a shop frames product photos: backdrop colours and the object's placement."""

    background: str  # "gradient", "noise", "linen" or "radial"
    colors: tuple[tuple[int, int, int], tuple[int, int, int]]
    scale: float  # share of the frame the object's longer side fills
    offset: tuple[int, int]
    rotation: float  # degrees, counter-clockwise
    image_format: str  # PIL format name


PHOTO_STYLES: dict[str, PhotoStyle] = {
    "northwind": PhotoStyle(
        "gradient", ((250, 250, 255), (200, 216, 238)), 0.80, (0, 12), -4, "JPEG"
    ),
    "bluepeak": PhotoStyle("noise", ((238, 238, 236), (222, 222, 220)), 0.62, (-34, -22), 3, "PNG"),
    "cornerstore": PhotoStyle(
        "linen", ((246, 236, 214), (228, 214, 188)), 0.70, (28, 18), 6, "JPEG"
    ),
    "nebula": PhotoStyle("radial", ((255, 255, 255), (176, 196, 210)), 0.86, (0, 0), -2, "PNG"),
}
MIME_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}


@dataclass(frozen=True)
class LabelStyle:
    font: str
    bold_font: str
    background: tuple[int, int, int]
    ink: tuple[int, int, int]
    accent: tuple[int, int, int]


LABEL_STYLES: dict[str, LabelStyle] = {
    "northwind": LabelStyle(
        "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", (255, 255, 255), (20, 20, 20), (30, 70, 140)
    ),
    "bluepeak": LabelStyle(
        "DejaVuSansCondensed.ttf",
        "DejaVuSansCondensed-Bold.ttf",
        (240, 246, 252),
        (10, 30, 60),
        (10, 90, 160),
    ),
    "cornerstore": LabelStyle(
        "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", (252, 248, 236), (40, 30, 20), (120, 60, 20)
    ),
    "nebula": LabelStyle(
        "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", (255, 255, 250), (0, 0, 0), (90, 40, 120)
    ),
}


@functools.lru_cache(maxsize=16)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    path = FONT_DIR / name
    try:
        return ImageFont.truetype(str(path), size)
    except OSError as exc:
        raise ImageRenderError(f"font {path} missing (install Debian's fonts-dejavu-core)") from exc


@functools.lru_cache(maxsize=256)
def _clipart(path: str) -> Image.Image:
    """The clip-art as RGBA, cropped to its visible content and at most 480 px."""
    try:
        with Image.open(path) as image:
            art = image.convert("RGBA")
    except OSError as exc:
        raise ImageRenderError(f"cannot read clip-art {path}: {exc}") from exc
    box = art.getchannel("A").getbbox()
    if box:
        art = art.crop(box)
    art.thumbnail((PHOTO_SIZE, PHOTO_SIZE), Image.Resampling.LANCZOS)
    return art


def _seed(*parts: str) -> int:
    return zlib.crc32("/".join(parts).encode())


@functools.lru_cache(maxsize=8)
def _background(shop: str) -> Image.Image:
    style = PHOTO_STYLES[shop]
    size = PHOTO_SIZE
    top, bottom = (np.array(c, dtype=np.float32) for c in style.colors)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    t = np.clip(np.hypot(xx - 0.5, yy - 0.5) / 0.71, 0, 1) if style.background == "radial" else yy
    pixels = top * (1 - t[..., None]) + bottom * t[..., None]
    rng = np.random.default_rng(_seed("background", shop))
    if style.background == "noise":
        pixels += rng.normal(0, 6, pixels.shape[:2])[..., None]
    elif style.background == "linen":
        weave = np.sin(xx * size * 1.3) * 4 + np.sin(yy * size * 1.7) * 4
        pixels += (weave + rng.normal(0, 3, weave.shape))[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def render_product_photo(offer: DemoOffer) -> Image.Image:
    """The offer's 480x480 RGB product photo: the product's clip-art in the shop's framing."""
    style = PHOTO_STYLES[offer.shop]
    art = _clipart(offer.product.clipart)
    target = int(PHOTO_SIZE * style.scale)
    factor = target / max(art.size)
    art = art.resize(
        (max(1, round(art.width * factor)), max(1, round(art.height * factor))),
        Image.Resampling.LANCZOS,
    )
    art = art.rotate(style.rotation, resample=Image.Resampling.BICUBIC, expand=True)
    photo = _background(offer.shop).copy()
    x = (PHOTO_SIZE - art.width) // 2 + style.offset[0]
    y = (PHOTO_SIZE - art.height) // 2 + style.offset[1]
    photo.paste(art, (x, y), art)
    return photo


def _trim(value: float, places: int = 2) -> str:
    """1.0 -> "1", 1.25 -> "1.25": how labels print numbers."""
    text = f"{value:.{places}f}".rstrip("0").rstrip(".")
    return text or "0"


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _weight_line(product: DemoProduct, imperial: bool) -> tuple[str, float]:
    grams = product.weight_g
    if imperial:
        pounds = round(grams / GRAMS_PER_POUND, 1)
        if pounds >= 1:
            return f"Weight: {_trim(pounds, 1)} lb", round(pounds * GRAMS_PER_POUND, 1)
        ounces = round(grams / GRAMS_PER_OUNCE, 1)
        return f"Weight: {_trim(ounces, 1)} oz", round(ounces * GRAMS_PER_OUNCE, 1)
    if grams >= 1000:
        return f"Weight: {_trim(grams / 1000)} kg", grams
    return f"Weight: {grams} g", grams


def _dimensions_line(product: DemoProduct, imperial: bool) -> tuple[str, list[float]]:
    if imperial:
        inches = [round(mm / MM_PER_INCH, 1) for mm in product.dimensions_mm]
        text = " x ".join(_trim(v, 1) for v in inches)
        return f"Dimensions: {text} in", [round(v * MM_PER_INCH, 1) for v in inches]
    text = " x ".join(_trim(mm / 10, 1) for mm in product.dimensions_mm)
    return f"Dimensions: {text} cm", list(product.dimensions_mm)


def label_lines(offer: DemoOffer) -> tuple[list[str], dict]:
    """The text lines a label prints (first: the brand) and the truth they state."""
    product = offer.product
    imperial = offer.shop in IMPERIAL_SHOPS
    truth: dict = {"brand": product.brand, "model": product.model}
    lines = [product.brand, f"Model: {product.model}"]
    weight_text, truth["weight_g"] = _weight_line(product, imperial)
    dims_text, dims = _dimensions_line(product, imperial)
    truth["dimensions_mm"] = [_number(v) for v in dims]
    truth["weight_g"] = _number(truth["weight_g"])
    lines += [weight_text, dims_text]
    lines.append("Material: " + ", ".join(f"{m.percent}% {m.name}" for m in product.materials))
    truth["materials"] = [{"name": m.name, "percent": m.percent} for m in product.materials]
    lines.append(("Color: " if imperial else "Colour: ") + ", ".join(product.colors))
    truth["colors"] = list(product.colors)
    if product.power_w is not None:
        lines.append(f"Power: {product.power_w} W")
        truth["power_w"] = product.power_w
    if product.voltage_v is not None:
        lines.append(f"Voltage: {product.voltage_v} V")
        truth["voltage_v"] = product.voltage_v
    if product.volume_ml is not None:
        volume = product.volume_ml
        lines.append(
            f"Capacity: {_trim(volume / 1000)} L" if volume >= 1000 else f"Capacity: {volume} ml"
        )
        truth["volume_ml"] = volume
    if product.storage_gb is not None:
        lines.append(f"Storage: {product.storage_gb} GB")
        truth["storage_gb"] = product.storage_gb
    if offer.gtin_printed is not None:
        # The label is the real product's: it carries the valid code even where the shop's
        # page has a typo in it (the bad_gtin defect).
        printed = product.gtin[1:] if len(offer.gtin_printed) == 12 else product.gtin
        lines.append(f"UPC {printed}" if len(printed) == 12 else f"EAN {printed}")
        truth["gtin"] = normalize_gtin(printed)
    return lines, truth


def render_label(offer: DemoOffer) -> tuple[Image.Image, dict]:
    """The offer's 640x360 label image and its ground truth (spec output contract)."""
    lines, truth = label_lines(offer)
    style = LABEL_STYLES[offer.shop]
    label = Image.new("RGB", LABEL_SIZE, style.background)
    draw = ImageDraw.Draw(label)
    draw.rectangle((6, 6, LABEL_SIZE[0] - 7, LABEL_SIZE[1] - 7), outline=style.accent, width=3)
    draw.text((28, 18), lines[0], font=_font(style.bold_font, 34), fill=style.accent)
    body = _font(style.font, 20)
    y = 68
    for line in lines[1:]:
        draw.text((28, y), line, font=body, fill=style.ink)
        y += 29
    return label, truth


def _encode(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, "JPEG", quality=90)
    else:
        image.save(buffer, "PNG", optimize=False)
    return buffer.getvalue()


@functools.lru_cache(maxsize=2048)
def photo_bytes(offer: DemoOffer) -> bytes:
    """Encoded product photo (JPEG or PNG, as the shop serves it)."""
    return _encode(render_product_photo(offer), PHOTO_STYLES[offer.shop].image_format)


@functools.lru_cache(maxsize=2048)
def label_bytes(offer: DemoOffer) -> bytes:
    """Encoded label image (always PNG: text survives it losslessly)."""
    return _encode(render_label(offer)[0], "PNG")


def image_response(offer: DemoOffer, name: str) -> tuple[bytes, str]:
    """(bytes, MIME type) of the offer's image file `name` (its photo or its label)."""
    if name == offer.photo_name:
        return photo_bytes(offer), MIME_TYPES[PHOTO_STYLES[offer.shop].image_format]
    if name == offer.label_name:
        return label_bytes(offer), "image/png"
    raise KeyError(f"{name!r} is not an image of offer {offer.sku}")


def write_label_set(catalog: Catalog, out_dir: Path, limit: int | None = None) -> dict[str, dict]:
    """Write label PNGs (one per offer, catalog order) and `truth.json` (file name -> truth)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    offers = catalog.offers if limit is None else catalog.offers[:limit]
    truth: dict[str, dict] = {}
    for offer in offers:
        image, facts = render_label(offer)
        name = f"{offer.shop}-{offer.label_name}"
        image.save(out_dir / name, "PNG")
        truth[name] = facts
    (out_dir / "truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    return truth
