"""Cumpair's plain libraries: vision, embeddings, the vector index, search and the demo shops.

Nothing under this package imports Scrapy; the Scrapy project (`cumpair_scraper`) and the OCR
server (`captcha_server`) are thin adapters over it.
"""
