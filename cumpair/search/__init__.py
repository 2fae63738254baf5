"""Search and cross-shop comparison: product matching, price views, queries, `cumpair serve`.

A plain library (never imports Scrapy). Matching: `features` -> `matching` -> `grouping`, stored
by `products` (`ProductGroups.assign` after each upsert, `regroup` in one pass). Queries:
`service` (with `ranking` and the keypoint check in `verify`), shown by `views`/`formatting`,
served by `server`, driven by `cli`. `evaluation`, `augment` and `demo_index` measure it all
against the demo shops' ground truth.
"""
