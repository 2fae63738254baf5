"""Offers into the store: the crawl's per-offer stages as plain functions (`stages`), and
`cumpair ingest`, which runs them over offer feeds (`formats` reads them, `offers` checks them,
`images` fetches their photos, `runner` drives the stages). Never imports Scrapy.
"""
