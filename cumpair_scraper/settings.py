"""Scrapy settings for Cumpair: every tunable of the project, with its default, in one place.

Override any of them per run (`scrapy crawl northwind -s NAME=value`), per shop in a spider's
`custom_settings`, or through the environment (`SCRAPY_NAME=value`, Scrapy's own mechanism).
"""

BOT_NAME = "cumpair"
SPIDER_MODULES = ["cumpair_scraper.spiders"]
NEWSPIDER_MODULE = "cumpair_scraper.spiders"
COMMANDS_MODULE = "cumpair_scraper.commands"
# One spider per file in cumpair_scraper/shops/ (and in SHOP_CONFIG_DIRS).
SPIDER_LOADER_CLASS = "cumpair_scraper.spiderloader.ShopSpiderLoader"
SHOP_CONFIG_DIRS: list[str] = []

# Where everything the crawl keeps lives: images, the vector index, its metadata.
# Relative paths are taken from the directory the crawl runs in.
INDEX_DATA_DIR = "index_data"

# --- Politeness -------------------------------------------------------------------------------
USER_AGENT = "CumpairBot/0.1 (+self-hosted price comparison; obeys robots.txt)"
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_DELAY = 0.0
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.25
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0
COOKIES_ENABLED = True
RETRY_ENABLED = True
RETRY_TIMES = 3
# Statuses on which the host is backed off (see middlewares/retry_after.py).
RETRY_BACKOFF_HTTP_CODES = [429, 503]
RETRY_BACKOFF_BASE = 1.0
RETRY_AFTER_MAX = 300.0

DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "cumpair_scraper.middlewares.retry_after.RetryAfterMiddleware": 550,
}

# --- JavaScript shops (scrapy-playwright with Debian's Chromium) -------------------------------
# Only requests with meta["playwright"] (shops whose config says javascript) use the browser.
DOWNLOAD_HANDLERS = {
    "http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
    "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
}
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
PLAYWRIGHT_BROWSER_TYPE = "chromium"
PLAYWRIGHT_LAUNCH_OPTIONS = {
    "executable_path": "/usr/bin/chromium",
    "headless": True,
    # No sandbox as root in containers; no background traffic to Google on a closed network.
    "args": [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ],
}
PLAYWRIGHT_MAX_CONTEXTS = 2
PLAYWRIGHT_MAX_PAGES_PER_CONTEXT = 4
PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT = 30_000

# --- Items ------------------------------------------------------------------------------------
ITEM_PIPELINES = {
    "cumpair_scraper.pipelines.validate.ValidationPipeline": 100,
    "cumpair_scraper.pipelines.images.ProductImagesPipeline": 200,
}
# Unset: images go to <INDEX_DATA_DIR>/images (see pipelines/images.py).
IMAGES_STORE = None
IMAGES_URLS_FIELD = "image_urls"
IMAGES_RESULT_FIELD = "images"
IMAGES_MIN_WIDTH = 32
IMAGES_MIN_HEIGHT = 32

FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = "INFO"
