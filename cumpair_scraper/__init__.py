"""Cumpair's Scrapy project: spiders driven by shop configs, middlewares and item pipelines.

Everything here is a thin adapter over the plain libraries in `cumpair/`; the heavy lifting
(vision, embeddings, the index) never happens in this package.
"""

import os

# Scrapy's cookie middleware asks tldextract for the public suffix list, and tldextract would
# download it on a machine without its cache (~/.cache/python-tldextract), logging a traceback
# when offline. The list bundled with tldextract tells shops' domains from public suffixes well
# enough, so no crawl fetches it; to use a fresher list, point this variable at a file or URL.
# Set on import: Scrapy builds its extractor when its cookies middleware loads, which every crawl
# of this project does after importing this package (its settings module or a middleware).
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
