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


def test_a_javascript_page_load_that_ran_out_of_time_is_retried():
    """Only the browser shop's crawler retries Playwright's timeout (the others never import
    Playwright for it); Scrapy's own retried exceptions stay."""
    from playwright.async_api import TimeoutError as BrowserTimeout
    from scrapy.downloadermiddlewares.retry import RetryMiddleware

    loader = ShopSpiderLoader(get_project_settings())
    for name in loader.list():
        settings = get_project_settings().copy()
        loader.load(name).update_settings(settings)
        retried = RetryMiddleware(settings).exceptions_to_retry
        timeout = BrowserTimeout("Page.goto: Timeout 30000ms exceeded.")
        assert isinstance(timeout, retried) == (name == "nebula"), name
        assert OSError in retried, name


def test_the_browser_timeout_joins_an_operators_own_retried_exceptions():
    """`-s RETRY_EXCEPTIONS=...` outranks the spider's priority: the timeout is added to the
    operator's list there, not dropped with it."""
    from playwright.async_api import TimeoutError as BrowserTimeout
    from scrapy.downloadermiddlewares.retry import RetryMiddleware

    loader = ShopSpiderLoader(get_project_settings())
    settings = get_project_settings().copy()
    settings.set("RETRY_EXCEPTIONS", ["builtins.ConnectionError"], priority="cmdline")
    loader.load("nebula").update_settings(settings)
    retried = RetryMiddleware(settings).exceptions_to_retry
    assert isinstance(BrowserTimeout("Page.goto: Timeout 30000ms exceeded."), retried)
    assert ConnectionError in retried
    assert OSError not in retried  # the operator's list replaced Scrapy's, as they asked
