"""The one writer of a store fed by many crawl processes: items arrive on a Redis stream
(`stream`, written by the crawl's hand-off pipeline in `cumpair_scraper.pipelines.handoff`),
and `worker.Indexer` runs the crawl's own stages (`cumpair.ingest.stages`) on them and
acknowledges each only once the store holds it. Never imports Scrapy.
"""
