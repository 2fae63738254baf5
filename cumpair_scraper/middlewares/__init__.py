"""Downloader middlewares: politeness (Retry-After back-off), challenge pages, and accounting
for what Scrapy's own drop (download size limits, redirect loops)."""
