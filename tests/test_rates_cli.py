"""`cumpair rates fetch` reads the ECB's XML feed (here from a local server: no network in
tests) into the JSON rate file `--rates` reads; `show` checks a file."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cumpair.cli import main
from cumpair.search.rates import load_rates

ECB_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
    b'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">'
    b"<gesmes:subject>Reference rates</gesmes:subject><Cube>"
    b'<Cube time="2026-11-30"><Cube currency="USD" rate="1.0533"/>'
    b'<Cube currency="JPY" rate="158.12"/></Cube></Cube></gesmes:Envelope>'
)


@pytest.fixture
def feed():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = ECB_XML if self.path == "/eurofxref-daily.xml" else b"not found"
            self.send_response(200 if self.path == "/eurofxref-daily.xml" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_writes_the_feeds_rates_as_a_rate_file(feed, tmp_path, capsys):
    out = tmp_path / "rates.json"
    assert main(["rates", "fetch", "--url", f"{feed}/eurofxref-daily.xml", "--out", str(out)]) == 0
    table = load_rates(out)
    assert (table.base, table.date.isoformat(), str(table.rates["USD"])) == (
        "EUR",
        "2026-11-30",
        "1.0533",
    )
    assert "2 rates of 2026-11-30" in capsys.readouterr().out
    assert main(["rates", "show", str(out)]) == 0
    assert "USD  1.0533" in capsys.readouterr().out


def test_an_unreachable_feed_or_a_bad_file_is_a_clear_error(feed, tmp_path, capsys):
    out = tmp_path / "rates.json"
    assert main(["rates", "fetch", "--url", f"{feed}/missing", "--out", str(out)]) == 1
    assert "cannot fetch the rates" in capsys.readouterr().err and not out.exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("USD;1.05\n")
    assert main(["rates", "show", str(bad)]) == 1
    assert "expected the ECB CSV" in capsys.readouterr().err
