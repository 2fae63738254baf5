"""Writing one store from many crawl processes.

With Redis: items arrive on a Redis stream (`stream`, written by the crawl's hand-off pipeline
in `cumpair_scraper.pipelines.handoff`), and `worker.Indexer` runs the crawl's own stages
(`cumpair.ingest.stages`, the vision stage in `vision`'s worker processes) on them and
acknowledges each only once the store holds it. Without Redis: processes sharing a store take
turns at its writer lock (`turns`), the waiting ones spooling their offers durably (`spool`).
Never imports Scrapy.
"""
