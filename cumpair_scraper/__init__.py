"""Cumpair's Scrapy project: spiders driven by shop configs, middlewares and item pipelines.

Everything here is a thin adapter over the plain libraries in `cumpair/`; the heavy lifting
(vision, embeddings, the index) never happens in this package.
"""
