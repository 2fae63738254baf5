"""Scrapy settings for Cumpair: every tunable of the project, with its default, in one place.

Override any of them per run (`scrapy crawl northwind -s NAME=value`, also for `crawlall`) or
per scrapyd job (`schedule.json -d setting=NAME=value`). Shop configs (shops/*.toml) hold no
settings, and Scrapy reads no `SCRAPY_NAME` variables from the environment (only
SCRAPY_SETTINGS_MODULE, SCRAPY_PROJECT and a few of its own): to change a default for every run,
edit it here.
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
# Statuses besides 200 whose latency may lower a host's delay (cumpair_scraper/throttle.py, which
# replaces Scrapy's AutoThrottle in EXTENSIONS): a recrawl's 304s to revalidated photos are the
# shop's real, cheap answers. [] is Scrapy's own rule (only a 200 lowers it).
AUTOTHROTTLE_LEARN_STATUSES = [304]
COOKIES_ENABLED = True
RETRY_ENABLED = True
RETRY_TIMES = 3
# Statuses on which the host is backed off (see middlewares/retry_after.py).
RETRY_BACKOFF_HTTP_CODES = [429, 503]
RETRY_BACKOFF_BASE = 1.0
RETRY_AFTER_MAX = 300.0

DOWNLOADER_MIDDLEWARES = {
    # First: a page request waits here while PAGES_IN_FLIGHT_MAX pages are being scraped.
    "cumpair_scraper.inflight.PagesInFlightLimit": 50,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "cumpair_scraper.middlewares.retry_after.RetryAfterMiddleware": 550,
    # Above the retry middleware, so challenge pages are seen (and backed off) first.
    "cumpair_scraper.middlewares.challenge.ChallengeMiddleware": 560,
    # Scrapy's own, in their places: redirect loops and size-limit drops logged and counted.
    "scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware": None,
    "cumpair_scraper.middlewares.redirects.LoopAwareMetaRefreshMiddleware": 580,
    "scrapy.downloadermiddlewares.httpcompression.HttpCompressionMiddleware": None,
    "cumpair_scraper.middlewares.download_limits.DownloadLimitsMiddleware": 590,
    "scrapy.downloadermiddlewares.redirect.RedirectMiddleware": None,
    "cumpair_scraper.middlewares.redirects.LoopAwareRedirectMiddleware": 600,
}

# --- Download size limits and memory (middlewares/download_limits.py) -------------------------
# A body over its limit is dropped (a warning, `download_limits/*` stats), never parsed; the
# limit also stops decompression, so a gzip bomb never inflates. The largest real product pages
# seen (Amazon) are 2.5 MB of HTML; Scrapy's own default (1 GiB) let a 50 MB page through.
DOWNLOAD_MAXSIZE = 16 * 1024 * 1024
DOWNLOAD_WARNSIZE = 4 * 1024 * 1024
# Product photos (pipelines/images.py sends them as each image request's download_maxsize and
# download_warnsize): room for a full-resolution zoom photo, not for a stray video or archive.
IMAGES_DOWNLOAD_MAXSIZE = 32 * 1024 * 1024
IMAGES_DOWNLOAD_WARNSIZE = 8 * 1024 * 1024
# A guard behind those limits (Scrapy's MemoryUsage extension): once the crawl's peak RSS passes
# MEMUSAGE_LIMIT_MB it closes ("memusage_exceeded", items so far kept) rather than swap or be
# killed; MEMUSAGE_WARNING_MB logs first. With the OCR and embedding models loaded, `crawlall`
# of the four demo shops peaks at about 0.6 GB (bench/bench_startup.py; 2.1 GB before the ONNX
# export moved out of the crawl and the bounds below).
MEMUSAGE_ENABLED = True
MEMUSAGE_CHECK_INTERVAL_SECONDS = 30.0
MEMUSAGE_WARNING_MB = 3072
MEMUSAGE_LIMIT_MB = 4096
# The C allocator (cumpair_scraper/memory.py, the MallocLimits extension): at most this many
# glibc malloc arenas, and blocks of MALLOC_MMAP_THRESHOLD bytes or more mapped and given back
# when freed, so freed photo batches and model activations do not stay resident; 0 = glibc's.
MALLOC_ARENA_MAX = 2
MALLOC_MMAP_THRESHOLD = 256 * 1024
# Pages of one spider in Scrapy's scraper at once (cumpair_scraper/inflight.py; a page stays
# until its items are through the pipelines): past it, page requests wait, so a large catalog
# queues requests, not pages and items, ahead of OCR and embedding (Scrapy's own bound,
# SCRAPER_SLOT_MAX_ACTIVE_SIZE, counts 5 MB of page bodies: thousands of small pages). 0 = off.
PAGES_IN_FLIGHT_MAX = 32
# Scrapy runs CONCURRENT_ITEMS asyncio tasks per response until its items are through the
# pipelines (86 KB at Scrapy's 100, 7 KB at 1); a shop page yields one item or only requests.
CONCURRENT_ITEMS = 4

# --- Challenge pages (middlewares/challenge.py) -------------------------------------------------
# By default a challenge backs the host off and is recorded; it is never solved. Only hosts the
# operator lists here (their own or partner shops) get their challenge image read by our OCR.
# Third-party challenges (reCAPTCHA, hCaptcha, Turnstile) are never attempted.
CHALLENGE_ENABLED = True
CHALLENGE_STATUS_CODES = [403, 429, 503]
# CSS selectors, or `title:<regex>` matched against the page title.
CHALLENGE_MARKERS = ["form img.captcha", r"title:security check|are you (a )?(human|robot)"]
CHALLENGE_MAX_RETRIES = 3
CHALLENGE_BACKOFF_BASE = 5.0  # seconds, doubled per retry
CHALLENGE_BACKOFF_MAX = 300.0
CAPTCHA_AUTHORIZED_HOSTS: list[str] = []
CAPTCHA_SERVER_URL = ""  # a 2captcha-protocol server (captcha_server/); empty = in-process OCR
CAPTCHA_API_KEY = ""
CAPTCHA_SOLVE_ATTEMPTS = 2
CAPTCHA_SOLVE_TIMEOUT = 60.0
CAPTCHA_POLL_INTERVAL = 0.5
CAPTCHA_IMAGE_SELECTOR = "img.captcha"
CAPTCHA_ANSWER_FIELD = "answer"

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
# The browser loads no images, media or fonts (cumpair_scraper/browser.py): the spider reads the
# DOM, and the images pipeline downloads the photos once. None: the browser loads everything.
PLAYWRIGHT_ABORT_REQUEST = "cumpair_scraper.browser.skip_media"

# --- Items ------------------------------------------------------------------------------------
ITEM_PIPELINES = {
    "cumpair_scraper.pipelines.validate.ValidationPipeline": 100,
    "cumpair_scraper.pipelines.images.ProductImagesPipeline": 200,
    "cumpair_scraper.pipelines.specs.SpecsPipeline": 300,
    "cumpair_scraper.pipelines.index.IndexPipeline": 400,
}
# Unset: images go to <INDEX_DATA_DIR>/images (see pipelines/images.py).
IMAGES_STORE = None
IMAGES_URLS_FIELD = "image_urls"
IMAGES_RESULT_FIELD = "images"
IMAGES_MIN_WIDTH = 32
IMAGES_MIN_HEIGHT = 32
# Days a stored image is used without asking the shop (Scrapy's expiry). 0: every crawl asks
# for each image its response does not call fresh (IMAGES_HTTP_FRESHNESS below), conditionally
# (IMAGES_REVALIDATE: If-None-Match / If-Modified-Since from the last download), so a changed
# photo under such a URL is seen on the next crawl and an unchanged one costs a 304 where the
# shop sends validators. Unchanged bytes are never OCR'd or embedded again either
# way (the vision cache below).
IMAGES_EXPIRES = 0
IMAGES_REVALIDATE = True
# A stored image whose response is still fresh by the shop's own Cache-Control max-age or
# Expires (RFC 9111, as a private cache: no heuristic freshness) is used without a request.
# Image CDNs give long lifetimes to versioned URLs (Shopify's `?v=`, a checksum in the path) and
# change the URL with the photo, so a recrawl asks only for its pages and new photos; a shop that
# replaces a photo under the same URL and still says it is fresh for a time is seen after that
# time, as by every browser and CDN. no-cache, no-store or no lifetime: asked again as above.
IMAGES_HTTP_FRESHNESS = True
# The same expiry in hours, for recrawls within a day (None: IMAGES_EXPIRES decides). A stored
# photo younger than this (downloaded or revalidated since) is used without a request, so a
# recrawl sends only its pages; but a photo replaced under the same URL is seen only once the
# stored copy is this old. 20 keeps a daily crawl asking for every photo it may not call fresh
# and spares the ones in between.
IMAGES_EXPIRES_HOURS = None

# --- Specifications from page text and images (pipelines/specs.py) ---------------------------
SPECS_ENABLED = True
SPECS_OCR_ENGINES = ["tesseract", "rapidocr"]  # fallback chain order (easyocr also available)
SPECS_OCR_MAX_VARIANTS = 2  # preprocessing variants tried per engine
SPECS_MIN_CONFIDENCE = 0.80  # below this an OCR result falls through to the next engine
SPECS_MAX_WORKERS = 2  # threads running OCR; bounds the images in flight
SPECS_MAX_IMAGES_PER_ITEM = 2
SPECS_DOMINANT_COLORS = 3
SPECS_IMAGE_TIMEOUT = 60.0  # seconds before one image is given up (the item goes on)
# OCR only images in which RapidOCR's detector sees a text line (cumpair/vision/text_gate.py): a
# box SPECS_TEXT_GATE_MIN_ASPECT times wider than tall, at most SPECS_TEXT_GATE_MAX_HEIGHT of the
# image high. Product photos rarely print a spec and cost 3-5x a label's OCR.
SPECS_TEXT_GATE = True
SPECS_TEXT_GATE_MIN_ASPECT = 2.0
SPECS_TEXT_GATE_MAX_HEIGHT = 0.25

# --- Vision cache (cumpair/vision/cache.py, pipelines/vision_cache.py) ------------------------
# OCR answers, colours and vectors keyed by the image's (text's) bytes and the OCR chain /
# encoder version, in <INDEX_DATA_DIR>/vision_cache.sqlite: a recrawl of unchanged images runs
# no OCR and no model. Least recently used entries go past the bound (`cumpair index stats`).
VISION_CACHE_ENABLED = True
VISION_CACHE_MAX_MB = 1024

# --- Embeddings and the product index (pipelines/index.py) ------------------------------------
INDEX_ENABLED = True
# Threads (per spider) that embed and write; bounds the items in flight in this stage. Each
# waits on its item's vectors, so fewer than EMBED_BATCH_SIZE of them never fill a batch: with 4,
# every batch waited EMBED_MAX_WAIT for 1-2 items, capping one shop's stage at 4 items per
# (EMBED_MAX_WAIT + model) seconds, about 3 items/s (memory: the embedder queues at most two
# batches, and a worker waiting for room holds one item's photo bytes).
INDEX_WORKERS = 32
# Offers upserted together, in one durable transaction (cumpair.indexer.turns.BatchedWrites):
# a batch is written once this many wait, or once its first has waited MAX_WAIT_S, or at close;
# an item goes on to the feed only once its batch is durable. One offer at a time pays the
# transaction and the title index's bookkeeping per offer (writer CPU, 800 synthetic offers:
# 11.2 ms an offer stored and grouped one at a time, 7.7 ms in batches of 32; unchanged again:
# 1.8 ms, 0.8 ms). A first crawl's items come as fast as OCR lets them, so its batches are small.
INDEX_WRITE_BATCH_SIZE = 32
INDEX_WRITE_MAX_WAIT_S = 0.1
# Crawl processes sharing a store without Redis (two scrapyd jobs) take turns at its writer lock
# (cumpair/indexer/turns.py): while another holds it, offers wait durably in the spool
# (None: <INDEX_DATA_DIR>/spool/offers.sqlite), the store is tried again every RETRY_S, its holder
# drains the spool every DRAIN_S, and a closing process waits up to CLOSE_WAIT_S for its turn.
INDEX_SPOOL_PATH = None
INDEX_SPOOL_RETRY_S = 5.0
INDEX_SPOOL_DRAIN_S = 5.0
INDEX_SPOOL_CLOSE_WAIT_S = 300.0
# The store's options: every field of cumpair.index.StoreOptions (records.py says what each does)
# is the setting CUMPAIR_INDEX_<FIELD> with the field's default, declared here from the dataclass
# so names and defaults cannot drift; `scrapy settings --get NAME` shows one. For example
# CUMPAIR_INDEX_FLUSH_INTERVAL_S (300: seconds between snapshots; also at close),
# CUMPAIR_INDEX_BACKUPS_KEEP (3), CUMPAIR_INDEX_UPGRADE_THRESHOLD (100000 vectors before IVF-PQ),
# CUMPAIR_INDEX_LOCK_TIMEOUT_S (10), CUMPAIR_INDEX_SYNCHRONOUS (NORMAL; FULL survives power loss)
# and CUMPAIR_INDEX_DUPLICATE_THRESHOLD (0.995: the cosine at or above which a same-shop offer with
# a near-identical photo AND text is the same offer; re-encoded photos of one product measured
# >= 0.9979, two products shot alike up to 0.9990 but their texts differ; None turns it off).
from cumpair.index.records import StoreOptions  # noqa: E402

globals().update(StoreOptions.setting_defaults())
# auto: CLIP when its weights are on disk, else the offline EfficientNet-Lite0 + MiniLM encoders.
EMBED_ENCODERS = "auto"
EMBED_CLIP_MODEL = "ViT-B-32"
EMBED_CLIP_PRETRAINED = "laion2b_s34b_b79k"  # a tag (hub download when online) or a local file
EMBED_BACKEND = "auto"  # onnx or torch for the offline encoders; auto = the faster (ONNX)
# Threads per model call; the embedding stage runs cores // EMBED_THREADS calls side by side
# (one single-threaded batch per core is the fastest for a crawl: bench/bench_embed.py).
# 0 = every core in one call at a time.
EMBED_THREADS = 1
EMBED_MODEL_DIR = None  # ONNX exports; None = <INDEX_DATA_DIR>/models
EMBED_BATCH_SIZE = 32
EMBED_MAX_WAIT = 1.0  # seconds a partial batch waits for more items

# --- Price-drop alerts (cumpair_scraper/alerts.py over cumpair/alerts/) ---------------------
# At spider close the watches of INDEX_DATA_DIR (`cumpair watch add`) are checked and their
# notices sent, in a thread and within CUMPAIR_ALERTS_DEADLINE_S. Every field of
# cumpair.alerts.AlertOptions is the setting CUMPAIR_ALERTS_<FIELD>: ENABLED (True),
# RETRIES (3) and BACKOFF_S (1.0, doubled per retry) for webhooks, WEBHOOK_TIMEOUT_S (10),
# DEADLINE_S (60), SMTP_HOST (empty: no e-mail), SMTP_PORT (587), SMTP_USER, SMTP_PASSWORD,
# SMTP_FROM, SMTP_STARTTLS (True).
EXTENSIONS = {
    "cumpair_scraper.memory.MallocLimits": 0,
    "scrapy.extensions.throttle.AutoThrottle": None,
    "cumpair_scraper.throttle.RevalidationAwareAutoThrottle": 0,
    "cumpair_scraper.alerts.PriceAlerts": 500,
}
from cumpair.alerts.options import AlertOptions  # noqa: E402

globals().update(AlertOptions.setting_defaults())

# --- Several machines: Redis mode (redis_mode.py; README "Several machines") ---------------
# Empty: one process crawls and indexes (the default). A Redis URL: every `scrapy crawl <shop>`
# given the same one shares that shop's frontier (scrapy-redis), the per-host pace and back-off,
# and hands its items to `cumpair indexer` instead of opening the store.
CRAWL_REDIS_URL = ""
CRAWL_REDIS_PREFIX = "cumpair"  # of every key the mode writes
CRAWL_REDIS_ITEMS_KEY = "cumpair:items"  # the stream `cumpair indexer --stream` reads
CRAWL_REDIS_LEASE_S = 30.0  # a dead crawler's requests go back to the queue after this long
# A finished crawl run's dupefilter is kept this long: crawlers started meanwhile find it done.
CRAWL_REDIS_RERUN_AFTER_S = 3600.0
CRAWL_REDIS_HOST_INTERVAL = 0.1  # seconds between two requests to a host, all crawlers together
CRAWL_REDIS_TURN_LOG = 0  # each host's last N turns kept in Redis, to check a pace on (0: none)
ADDONS = {"cumpair_scraper.redis_mode.RedisMode": 0}

FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = "INFO"
