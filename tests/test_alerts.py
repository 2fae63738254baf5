"""Price-drop alerts: watches, once-per-drop checks, webhook and e-mail delivery, the CLI, and
a real crawl of a demo shop whose price drops calling a local webhook exactly once."""

from __future__ import annotations

import dataclasses
import json
import socketserver
import subprocess
import sys
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cumpair.alerts import AlertOptions, WatchBook, run_alerts
from cumpair.alerts.book import AlertError, make_watch, parse_reference
from cumpair.alerts.check import check_watches
from cumpair.alerts.notify import deliver
from cumpair.cli import main as cumpair_main
from cumpair.demo.catalog import Catalog, build_catalog
from cumpair.identifiers import normalize_gtin
from cumpair.index import ProductStore, StoreOptions
from cumpair.search.demo_index import demo_offer_record, demo_url, index_demo_offers
from cumpair.search.products import ProductGroups
from tests.model_fixtures import with_installed_models

ROOT = Path(__file__).resolve().parents[1]
FAST = AlertOptions(retries=2, backoff_s=0.0, deadline_s=30)


class Hook:
    """A local webhook receiver: records every POST body; fails the first `fail_first`."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict] = []
        self.fail_first = fail_first
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hook.fail_first > 0:
                    hook.fail_first -= 1
                    self.send_response(503)
                else:
                    hook.bodies.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    receiver = Hook()
    yield receiver
    receiver.close()


@pytest.fixture
def catalog():
    return build_catalog(n_products=4, seed=3)


@pytest.fixture
def store_dir(tmp_path, catalog):
    store = ProductStore.open(tmp_path, {}, StoreOptions(duplicate_threshold=None))
    groups = ProductGroups.open(tmp_path)
    index_demo_offers(store, groups, catalog.offers)
    groups.close()
    store.close()
    return tmp_path


def _crawl_price(store_dir: Path, offer, price: Decimal) -> None:
    """What a later crawl does to one offer: one more price-history point."""
    with ProductStore.open(store_dir, {}, StoreOptions(duplicate_threshold=None)) as store:
        store.upsert(demo_offer_record(offer, price=price), {})


def _check(store_dir: Path) -> int:
    with (
        WatchBook.open(store_dir) as book,
        ProductStore.open(store_dir, readonly=True) as store,
        ProductGroups.open(store_dir, readonly=True) as groups,
    ):
        return check_watches(book, store, groups)


# -- watches ---------------------------------------------------------------------------------


def test_references_are_urls_gtins_or_product_ids():
    assert parse_reference("https://shop.example/p/1") == ("url", "https://shop.example/p/1")
    assert parse_reference("4006381333931") == ("gtin", normalize_gtin("4006381333931"))
    assert parse_reference("4006381333932") == ("product", "4006381333932")  # bad check digit
    assert parse_reference("42") == ("product", "42")
    with pytest.raises(AlertError, match="no product id"):
        parse_reference("drill")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"webhook": "http://h"}, "target price"),
        ({"below": Decimal(5)}, "exactly one"),
        ({"below": Decimal(5), "webhook": "ftp://h"}, "http"),
        ({"below": Decimal(5), "email": "nobody"}, "e-mail"),
        ({"drop_pct": 150.0, "webhook": "http://h"}, "between 0 and 100"),
    ],
)
def test_a_watch_without_target_or_channel_is_refused(kwargs, message):
    with pytest.raises(AlertError, match=message):
        make_watch("42", **kwargs)


def test_watches_survive_reopening_the_book(tmp_path):
    with WatchBook.open(tmp_path) as book:
        saved = book.add(make_watch("7", below=Decimal("9.5"), webhook="http://h/x"))
    with WatchBook.open(tmp_path) as book:
        assert book.watches() == [saved]
        book.remove(saved.id)
        with pytest.raises(AlertError, match="no watch"):
            book.remove(saved.id)


# -- checking: once per drop ----------------------------------------------------------------


def test_a_drop_to_the_target_is_told_once_until_the_price_rises_again(store_dir, catalog):
    offer = catalog.offers[0]
    with WatchBook.open(store_dir) as book:
        book.add(make_watch(demo_url(offer), below=offer.price - 5, webhook="http://h/x"))
    assert _check(store_dir) == 0  # over the target
    _crawl_price(store_dir, offer, offer.price - 5)
    assert _check(store_dir) == 1  # at the target
    assert _check(store_dir) == 0  # the same drop, checked again
    _crawl_price(store_dir, offer, offer.price - 5)
    assert _check(store_dir) == 0  # crawled again, still the same drop
    _crawl_price(store_dir, offer, offer.price - 7)
    assert _check(store_dir) == 1  # lower still: a new drop
    _crawl_price(store_dir, offer, offer.price)
    assert _check(store_dir) == 0  # back up: re-armed
    _crawl_price(store_dir, offer, offer.price - 6)
    assert _check(store_dir) == 1
    with WatchBook.open(store_dir) as book:
        notices = book.notices()
    assert [n.price for n in notices] == [offer.price - 5, offer.price - 7, offer.price - 6]
    assert {n.shop for n in notices} == {offer.shop} and notices[0].url == demo_url(offer)


def test_a_product_watch_covers_every_shop_and_a_trend_watch_needs_a_trend(store_dir, catalog):
    product = next(p for p in catalog.products if len(catalog.offers_for_product(p.product_id)) > 1)
    offers = catalog.offers_for_product(product.product_id)
    with WatchBook.open(store_dir) as book:
        book.add(make_watch(product.gtin, drop_pct=10.0, webhook="http://h/x"))
    _crawl_price(store_dir, offers[0], offers[0].price * Decimal("0.5"))
    assert _check(store_dir) == 0  # one earlier price is no trend
    for offer in offers:
        _crawl_price(store_dir, offer, offer.price)
        _crawl_price(store_dir, offer, offer.price)
    _crawl_price(
        store_dir, offers[-1], (offers[-1].price * Decimal("0.85")).quantize(Decimal("0.01"))
    )
    assert _check(store_dir) == 1
    with WatchBook.open(store_dir) as book:
        (notice,) = book.notices()
    assert notice.shop == offers[-1].shop and "under the trend" in notice.reason


# -- delivery --------------------------------------------------------------------------------


def _one_notice(store_dir: Path, catalog, **channel) -> None:
    offer = catalog.offers[0]
    with WatchBook.open(store_dir) as book:
        book.add(make_watch(demo_url(offer), below=offer.price, **channel))
    assert _check(store_dir) == 1


def test_a_webhook_that_fails_is_retried_with_back_off_until_it_answers(store_dir, catalog):
    hook = Hook(fail_first=2)
    try:
        _one_notice(store_dir, catalog, webhook=hook.url)
        with WatchBook.open(store_dir) as book:
            result = deliver(book, FAST)
            (notice,) = book.notices()
    finally:
        hook.close()
    assert (result.sent, result.failed, notice.status, notice.attempts) == (1, 0, "sent", 3)
    (body,) = hook.bodies
    offer = catalog.offers[0]
    assert (body["shop"], Decimal(body["price"]), body["url"]) == (
        offer.shop, offer.price, demo_url(offer)
    )  # fmt: skip


def test_a_dead_webhook_fails_after_its_retries_and_is_never_sent_twice(store_dir, catalog):
    hook = Hook(fail_first=100)
    try:
        _one_notice(store_dir, catalog, webhook=hook.url)
        with WatchBook.open(store_dir) as book:
            assert deliver(book, FAST).failed == 1
            assert deliver(book, FAST).failed == 0  # failed notices are not retried forever
            (notice,) = book.notices()
    finally:
        hook.close()
    assert (notice.status, notice.attempts) == ("failed", FAST.retries + 1)


class _SMTP(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib to hand over one message."""

    received: list[bytes] = []

    def handle(self) -> None:
        self.wfile.write(b"220 test\r\n")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                self.wfile.write(b"354 go\r\n")
                body = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    body += chunk
                self.received.append(body)
                self.wfile.write(b"250 ok\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


def test_email_goes_through_the_configured_smtp_server(store_dir, catalog):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTP)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = dataclasses.replace(
        FAST, smtp_host="127.0.0.1", smtp_port=server.server_address[1], smtp_starttls=False
    )
    try:
        _one_notice(store_dir, catalog, email="me@example.org")
        with WatchBook.open(store_dir) as book:
            assert deliver(book, options).sent == 1
    finally:
        server.shutdown()
        server.server_close()
    message = _SMTP.received[-1].decode()
    assert "To: me@example.org" in message and catalog.offers[0].shop in message


def test_email_without_an_smtp_server_fails_with_the_reason(store_dir, catalog):
    _one_notice(store_dir, catalog, email="me@example.org")
    with WatchBook.open(store_dir) as book:
        deliver(book, dataclasses.replace(FAST, retries=0))
        row = book._select("SELECT status, last_error FROM notices")[0]
    assert row["status"] == "failed" and "CUMPAIR_ALERTS_SMTP_HOST" in row["last_error"]


def test_alert_options_come_whole_from_settings():
    options = AlertOptions.from_settings(
        {"CUMPAIR_ALERTS_RETRIES": "5", "CUMPAIR_ALERTS_ENABLED": "off"}
    )
    assert (options.retries, options.enabled, options.backoff_s) == (5, False, 1.0)
    with pytest.raises(ValueError, match="CUMPAIR_ALERTS_SMTP_PORT"):
        AlertOptions.from_settings({"CUMPAIR_ALERTS_SMTP_PORT": "x"})


# -- the command line ------------------------------------------------------------------------


def test_watch_commands_add_list_and_remove(store_dir, catalog, capsys, hook):
    offer = catalog.offers[0]
    index = ["--index", str(store_dir)]
    assert (
        cumpair_main(
            ["watch", "add", demo_url(offer), "--below", "1", "--webhook", hook.url, *index]
        )
        == 0
    )
    assert "watch 1: url" in capsys.readouterr().out
    assert cumpair_main(["watch", "add", "999", "--below", "1", "--webhook", hook.url, *index]) == 1
    assert "no product 999" in capsys.readouterr().err
    assert cumpair_main(["watch", "list", "--json", "--path", str(store_dir)]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["reference"] == demo_url(offer) and listed["notices"] == []
    _crawl_price(store_dir, offer, Decimal("0.99"))
    assert cumpair_main(["watch", "check", *index]) == 0
    assert "sent 1" in capsys.readouterr().out and len(hook.bodies) == 1
    assert cumpair_main(["watch", "remove", "1", *index]) == 0
    assert cumpair_main(["watch", "remove", "1", *index]) == 1
    assert "no watch 1" in capsys.readouterr().err


def test_nothing_watched_is_no_work(store_dir):
    assert run_alerts(store_dir) is None


# -- end to end: a crawl ---------------------------------------------------------------------


def _scrapy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scrapy", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.integration
def test_a_crawl_that_sees_a_price_drop_calls_the_webhook_exactly_once(
    demo_server_factory, tmp_path, hook
):
    catalog = build_catalog(n_products=4, seed=4)
    server = demo_server_factory(catalog=catalog)
    shop = "cornerstore"
    base = server.base_url(shop)
    data = with_installed_models(tmp_path / "data")
    crawl = (
        "crawl", shop, "-a", f"base_url={base}", "-s", f"INDEX_DATA_DIR={data}",
        "-s", "SPECS_ENABLED=false", "-s", "EMBED_ENCODERS=offline",
        "-s", f"LOG_FILE={tmp_path / 'crawl.log'}", "-s", "CUMPAIR_ALERTS_BACKOFF_S=0",
    )  # fmt: skip

    def run_crawl() -> None:
        result = _scrapy(*crawl)
        log = (tmp_path / "crawl.log").read_text()
        assert result.returncode == 0, result.stderr[-3000:] + log[-3000:]

    run_crawl()
    target = next(o for o in catalog.offers_by_shop(shop) if o.defect is None)
    url = base + target.url_path
    watch = ["watch", "add", url, "--below", str(target.price - 1), "--webhook", hook.url]
    assert cumpair_main([*watch, "--index", str(data)]) == 0

    cut = target.price - 2
    offers = [dataclasses.replace(o, price=cut) if o is target else o for o in catalog.offers]
    server.catalog = Catalog(catalog.seed, catalog.products, offers)
    run_crawl()
    assert len(hook.bodies) == 1
    body = hook.bodies[0]
    assert (body["shop"], Decimal(body["price"]), body["url"]) == (shop, cut, url)
    assert "alerts/sent': 1" in (tmp_path / "crawl.log").read_text()

    run_crawl()  # the price stays down: still one call
    assert len(hook.bodies) == 1


@pytest.mark.slow
def test_an_ingest_with_a_lower_price_calls_the_webhook(tmp_path, hook, monkeypatch, capsys):
    from cumpair.embed import load_encoders

    encoders = load_encoders("offline", backend="torch", threads=1)
    monkeypatch.setattr("cumpair.ingest.cli.load_index_encoders", lambda args: encoders)
    feed = tmp_path / "items.jl"
    row = {"shop": "aden", "url": "https://aden.example/drill", "title": "Bosch GSR 18V drill",
           "price": "99.00", "currency": "EUR", "brand": "Bosch", "image_urls": []}  # fmt: skip
    index = str(tmp_path / "index")

    def ingest(price: str) -> None:
        feed.write_text(json.dumps({**row, "price": price}) + "\n")
        assert cumpair_main(["ingest", "--index", index, "--no-ocr", str(feed)]) == 0

    ingest("99.00")
    assert cumpair_main(["watch", "add", row["url"], "--below", "90", "--webhook", hook.url,
                         "--index", index]) == 0  # fmt: skip
    ingest("95.00")
    assert hook.bodies == []
    ingest("89.50")
    assert [(b["shop"], b["price"], b["url"]) for b in hook.bodies] == [
        ("aden", "89.50", row["url"])
    ]
    capsys.readouterr()
