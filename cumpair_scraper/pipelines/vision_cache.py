"""The crawl's vision cache (`cumpair.vision.cache`), opened from settings in one place.

VISION_CACHE_ENABLED (True) and VISION_CACHE_MAX_MB (1024: about 5·10^4 products' OCR
answers, colours and vectors) decide it; the file is `vision_cache.sqlite` under
INDEX_DATA_DIR, where `cumpair index stats` finds it. Both the specs pipeline and the index
pipeline's embedder open it; SQLite lets their connections share the file.
"""

from __future__ import annotations

from pathlib import Path

from scrapy.settings import BaseSettings

from cumpair.vision.cache import FILE_NAME, VisionCache

DEFAULT_MAX_MB = 1024.0


def vision_cache_from_settings(settings: BaseSettings) -> VisionCache | None:
    """The cache the settings ask for, or None when VISION_CACHE_ENABLED is off or no
    INDEX_DATA_DIR is set (a crawler built outside the project's settings)."""
    if not settings.getbool("VISION_CACHE_ENABLED", True) or not settings.get("INDEX_DATA_DIR"):
        return None
    max_mb = settings.getfloat("VISION_CACHE_MAX_MB", DEFAULT_MAX_MB)
    if max_mb < 0:
        raise ValueError(f"VISION_CACHE_MAX_MB must not be negative, got {max_mb:g}")
    return VisionCache(Path(settings["INDEX_DATA_DIR"]) / FILE_NAME, max_bytes=int(max_mb * 2**20))
