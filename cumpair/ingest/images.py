"""Fetch a feed offer's photos into the store's images directory, as the crawl's images stage does.

The crawl's stage is Scrapy's ImagesPipeline: each photo is converted to an RGB JPEG and saved
as ``full/<sha1 of its URL>.jpg`` under the images directory. Feeds get the same layout, so a
photo crawled and fed in is one file and a re-ingest finds its photos already there. A feed
names photos by http(s) URL, ``file://`` URL or local path (relative to the feed's directory).
A photo that cannot be fetched or decoded is reported and loses only itself, never the offer.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from PIL import Image, UnidentifiedImageError

USER_AGENT = "cumpair-ingest (+https://github.com/cumpair)"
# Network and file errors (urllib's are OSErrors), too large, not an image.
_FETCH_ERRORS = (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError)


@dataclass(frozen=True)
class ImageOptions:
    """How photos are fetched: per-request timeout, largest download, photos kept per offer."""

    timeout_s: float = 30.0
    max_bytes: int = 20_000_000
    max_images: int = 8


@dataclass
class FetchedImages:
    """Paths (relative to the images directory) of the photos fetched, the feed's reference of
    each (same order), and why others were not fetched."""

    paths: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def image_file_name(url: str) -> str:
    """Where the photo at `url` lives under the images directory (Scrapy's ImagesPipeline name)."""
    return f"full/{hashlib.sha1(url.encode()).hexdigest()}.jpg"


def fetch_images(
    urls: list[str], images_dir: Path, base_dir: Path, options: ImageOptions = ImageOptions()
) -> FetchedImages:
    """Fetch `urls` (in order; the first is the main photo) into `images_dir`."""
    fetched = FetchedImages()
    for reference in urls[: options.max_images]:
        url = _absolute_url(reference, base_dir)
        relative = image_file_name(url)
        target = images_dir / relative
        if not target.is_file():
            try:
                _save_jpeg(_read(url, options), target)
            except _FETCH_ERRORS as exc:
                fetched.errors.append(f"{reference}: {type(exc).__name__}: {exc}")
                continue
        fetched.paths.append(relative)
        fetched.sources.append(reference)
    return fetched


def _absolute_url(reference: str, base_dir: Path) -> str:
    """An http(s) or file URL for a feed's image reference (a path is taken from `base_dir`)."""
    scheme = urlsplit(reference).scheme.lower()
    if scheme in ("http", "https", "file"):
        return reference
    path = Path(reference).expanduser()
    return (path if path.is_absolute() else base_dir / path).resolve().as_uri()


def _read(url: str, options: ImageOptions) -> bytes:
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = Path(url2pathname(parts.path))
        if path.stat().st_size > options.max_bytes:
            raise ValueError(f"larger than {options.max_bytes} bytes")
        return path.read_bytes()
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=options.timeout_s) as response:
        data = response.read(options.max_bytes + 1)
    if len(data) > options.max_bytes:
        raise ValueError(f"larger than {options.max_bytes} bytes")
    return data


def _save_jpeg(data: bytes, target: Path) -> None:
    """Decode `data` and write it as the RGB JPEG the crawl stores (transparency on white)."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            picture = Image.new("RGB", rgba.size, (255, 255, 255))
            picture.paste(rgba, rgba)
        else:
            picture = image.convert("RGB")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    picture.save(partial, "JPEG")
    os.replace(partial, target)  # never a half-written photo under the final name


__all__ = ["FetchedImages", "ImageOptions", "fetch_images", "image_file_name"]
