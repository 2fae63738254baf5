"""Search and cross-shop comparison: product matching, price views, queries, `cumpair serve`.

A plain library (never imports Scrapy). Grouping lives in `grouping`/`products`, queries in
`service`, presentation in `formatting`, the HTTP app in `server`, the sub-commands in `cli`.
"""
