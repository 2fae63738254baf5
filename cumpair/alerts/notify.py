"""Deliver the outbox: webhooks (an HTTP POST of the notice as JSON) and e-mail (SMTP).

Each notice is tried, then retried with exponential back-off, until it is sent, its retries
are spent (``failed``, with the last error kept) or the run's deadline passes (it stays
``pending`` for the next check). E-mail goes through the standard library's `smtplib`: one
SMTP server is all an operator has to configure, and it adds no dependency.
"""

from __future__ import annotations

import json
import logging
import smtplib
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage

from cumpair.alerts.book import Notice, Watch, WatchBook
from cumpair.alerts.options import AlertOptions

logger = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """One attempt to deliver a notice failed (the message says how)."""


@dataclass
class Delivery:
    sent: int = 0
    failed: int = 0
    pending: int = 0


def post_webhook(url: str, payload: dict, timeout: float) -> None:
    """POST `payload` as JSON; any answer but 2xx is a `DeliveryError`."""
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            reply.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook answered {exc.code}") from None
    except (OSError, urllib.error.URLError) as exc:
        raise DeliveryError(f"webhook unreachable: {exc}") from None


def send_email(address: str, notice: Notice, options: AlertOptions) -> None:
    if not options.smtp_host:
        raise DeliveryError("no SMTP server configured (CUMPAIR_ALERTS_SMTP_HOST)")
    message = EmailMessage()
    message["Subject"] = f"Price drop: {notice.title} at {notice.shop}: {notice.price}"
    message["From"] = options.smtp_from
    message["To"] = address
    message.set_content(
        f"{notice.title}\n{notice.shop}: {notice.price} {notice.currency or ''}"
        f" ({notice.reason})\n{notice.url}\n"
    )
    try:
        with smtplib.SMTP(options.smtp_host, options.smtp_port, timeout=30) as smtp:
            if options.smtp_starttls:
                smtp.starttls()
            if options.smtp_user:
                smtp.login(options.smtp_user, options.smtp_password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"SMTP: {exc}") from None


def _send(notice: Notice, watch: Watch, options: AlertOptions) -> None:
    if watch.webhook:
        post_webhook(watch.webhook, notice.payload(watch), options.webhook_timeout_s)
    else:
        send_email(watch.email or "", notice, options)


def deliver(book: WatchBook, options: AlertOptions) -> Delivery:
    """Send every pending notice within `options.deadline_s` seconds."""
    deadline = time.monotonic() + options.deadline_s
    result = Delivery()
    watches = {w.id: w for w in book.watches()}
    for notice in book.notices("pending"):
        watch = watches.get(notice.watch_id)
        if watch is None:
            continue
        attempts, error = 0, None
        while time.monotonic() < deadline:
            attempts += 1
            try:
                _send(notice, watch, options)
            except DeliveryError as exc:
                error = str(exc)
                logger.warning("alert %d: attempt %d failed: %s", notice.id, attempts, exc)
                if attempts > options.retries:
                    break
                wait = options.backoff_s * 2 ** (attempts - 1)
                time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
                continue
            error = None
            break
        if attempts and error is None:
            book.mark(notice.id, "sent", attempts, None)
            result.sent += 1
        elif attempts > options.retries:
            book.mark(notice.id, "failed", attempts, error)
            result.failed += 1
        else:  # out of time: the next check tries again
            book.mark(notice.id, "pending", attempts, error)
            result.pending += 1
    return result
