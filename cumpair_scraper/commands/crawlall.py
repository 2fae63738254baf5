"""`scrapy crawlall`: crawl every configured shop (or the ones named) in one process.

One process means the vision and embedding models load once for all shops, and the shops,
being different hosts, are crawled side by side. Each shop's items go to its own feed file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scrapy.commands import BaseRunSpiderCommand
from scrapy.exceptions import UsageError


class Command(BaseRunSpiderCommand):
    requires_project = True

    def syntax(self) -> str:
        return "[options] [shop ...]"

    def short_desc(self) -> str:
        return "Crawl all shops (or the named ones) in one process, one feed file per shop"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "--feeds-dir",
            metavar="DIR",
            default="var/feeds",
            help="write <DIR>/<shop>.jsonl for each shop (default: %(default)s)",
        )

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.crawler_process
        loader = self.crawler_process.spider_loader
        names = args or loader.list()
        unknown = sorted(set(names) - set(loader.list()))
        if unknown:
            raise UsageError(f"unknown shop(s): {', '.join(unknown)}")
        feeds_dir = Path(opts.feeds_dir)
        feeds_dir.mkdir(parents=True, exist_ok=True)
        crawlers = []
        for name in names:
            crawler = self.crawler_process.create_crawler(name)
            feed = (feeds_dir / f"{name}.jsonl").resolve().as_uri()
            crawler.settings.set(
                "FEEDS", {feed: {"format": "jsonlines", "overwrite": True}}, priority="cmdline"
            )
            crawlers.append(crawler)
            self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed:
            self.exitcode = 1
        for crawler in crawlers:
            stats = crawler.stats.get_stats()
            print(
                f"{crawler.spidercls.name:12} items={stats.get('item_scraped_count', 0):4} "
                f"dropped={stats.get('item_dropped_count', 0):3} "
                f"pages={stats.get('response_received_count', 0):4} "
                f"retries={stats.get('retry/count', 0):3} "
                f"robots_blocked={stats.get('robotstxt/forbidden', 0):3} "
                f"finish={stats.get('finish_reason')}"
            )
