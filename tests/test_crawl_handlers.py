"""Which download handlers a shop's crawler gets: the browser only where the shop needs one.

The project's DOWNLOAD_HANDLERS are scrapy-playwright's, whose handler starts a Playwright
driver (a node process) for each scheme as its crawler's engine starts, whatever the requests.
"""

from __future__ import annotations

from scrapy.utils.project import get_project_settings

from cumpair_scraper.spiderloader import ShopSpiderLoader

PLAYWRIGHT = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"


def crawler_handlers(**project_handlers: str) -> dict[str, dict[str, str]]:
    """Per bundled shop, its crawler's download handlers as Scrapy merges them (the project's
    DOWNLOAD_HANDLERS plus `project_handlers`)."""
    project = get_project_settings()
    project.set("DOWNLOAD_HANDLERS", {**project.getdict("DOWNLOAD_HANDLERS"), **project_handlers})
    loader = ShopSpiderLoader(project)
    handlers = {}
    for name in loader.list():
        settings = project.copy()
        loader.load(name).update_settings(settings)
        handlers[name] = dict(settings.getwithbase("DOWNLOAD_HANDLERS"))
    return handlers


def test_only_javascript_shops_download_through_playwright():
    handlers = crawler_handlers()
    assert handlers["nebula"]["http"] == handlers["nebula"]["https"] == PLAYWRIGHT  # javascript
    for shop in ("northwind", "bluepeak", "cornerstore"):
        assert PLAYWRIGHT not in handlers[shop].values(), shop
        assert handlers[shop]["http"].startswith("scrapy.core.downloader.handlers."), shop


def test_a_shop_without_javascript_keeps_the_projects_other_handlers():
    handlers = crawler_handlers(s3="myproject.handlers.S3Handler")
    for shop in ("northwind", "nebula"):
        assert handlers[shop]["s3"] == "myproject.handlers.S3Handler", shop
