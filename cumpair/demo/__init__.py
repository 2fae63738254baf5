"""The bundled demo shops: a seeded catalog, rendered photos/labels/captchas and an aiohttp server.

Four shops (northwind JSON-LD, bluepeak microdata, cornerstore plain HTML, nebula JavaScript)
sell overlapping products so crawls, vision and matching can be tested offline against known
truth. Never imports Scrapy: the crawler side only talks to it over HTTP.
"""
