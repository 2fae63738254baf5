"""`python -m captcha_server`: serve the 2captcha-compatible OCR API (default 127.0.0.1:9001).

Keys come from CAPTCHA_API_KEYS (comma-separated) and/or --keys-file; with none the server
refuses to start unless --no-auth is given. Admin keys (CAPTCHA_ADMIN_KEYS, --admin-keys-file)
see the global counters on /stats; any other key sees its own. --redis switches from the
in-process pool to the Redis queue served by `python -m captcha_server.worker`.
"""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from pathlib import Path

from aiohttp import web

from captcha_server.app import create_app
from captcha_server.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    Limits,
    QueueSettings,
    ServerConfig,
    load_keys,
    parse_engines,
)

_LIMITS, _QUEUE = Limits(), QueueSettings()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m captcha_server", description=__doc__)
    p.add_argument("--host", default=DEFAULT_HOST)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--keys-file", type=Path, help="API keys, one per line")
    p.add_argument("--admin-keys-file", type=Path, help="keys that see global /stats")
    p.add_argument("--no-auth", action="store_true", help="accept any key (trusted networks)")
    p.add_argument("--workers", type=int, default=2, help="local OCR processes (no --redis)")
    p.add_argument("--redis", metavar="URL", help="use the Redis queue, e.g. redis://host:6379/0")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve HTTPS")
    p.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    p.add_argument("--rate", type=float, default=20.0, help="submissions/s per key (0: off)")
    p.add_argument("--burst", type=int, default=60, help="submission burst per key")
    p.add_argument("--max-bytes", type=int, default=_LIMITS.max_bytes)
    p.add_argument("--max-pixels", type=int, default=_LIMITS.max_pixels)
    p.add_argument(
        "--body-timeout",
        type=float,
        default=_LIMITS.body_timeout_s,
        help="seconds a request body may take to arrive before it is cut",
    )
    p.add_argument(
        "--max-uploads",
        type=int,
        default=_LIMITS.max_uploads,
        help="request bodies read at once; more are refused with ERROR_NO_SLOT_AVAILABLE",
    )
    p.add_argument("--max-pending", type=int, default=_QUEUE.max_pending)
    p.add_argument("--task-ttl", type=int, default=_QUEUE.task_ttl_s)
    p.add_argument("--result-ttl", type=int, default=_QUEUE.result_ttl_s)
    p.add_argument("--visibility-timeout", type=float, default=_QUEUE.visibility_timeout_s)
    p.add_argument("--max-attempts", type=int, default=_QUEUE.max_attempts)
    p.add_argument("--sync-timeout", type=float, default=30.0, help="max wait of POST /v1/ocr")
    p.add_argument(
        "--engines",
        type=parse_engines,
        help="OCR engine order, e.g. tesseract,rapidocr (default: the vision library's chain)",
    )
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host,
        port=args.port,
        api_keys=load_keys(keys_file=args.keys_file),
        admin_keys=load_keys(keys_file=args.admin_keys_file, variable="CAPTCHA_ADMIN_KEYS"),
        no_auth=args.no_auth,
        workers=args.workers,
        redis_url=args.redis,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        rate_per_s=args.rate,
        rate_burst=args.burst,
        sync_timeout_s=args.sync_timeout,
        engines=args.engines,
        limits=Limits(
            max_bytes=args.max_bytes,
            max_pixels=args.max_pixels,
            body_timeout_s=args.body_timeout,
            max_uploads=args.max_uploads,
        ),
        queue=QueueSettings(
            task_ttl_s=args.task_ttl,
            result_ttl_s=args.result_ttl,
            visibility_timeout_s=args.visibility_timeout,
            max_attempts=args.max_attempts,
            max_pending=args.max_pending,
        ),
    )


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as exc:
        sys.exit(f"captcha_server: {exc}")
    ssl_context = None
    if config.tls_cert is not None and config.tls_key is not None:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(config.tls_cert, config.tls_key)
    web.run_app(
        create_app(config),
        host=config.host,
        port=config.port,
        ssl_context=ssl_context,
        print=lambda msg: logging.getLogger("captcha_server").info(msg),
    )


if __name__ == "__main__":
    main()
