"""Meet challenge pages politely: back off the host, and solve captchas only where allowed.

A challenge page (a status in CHALLENGE_STATUS_CODES whose body matches CHALLENGE_MARKERS) means
the shop wants us to slow down. By default the host's download slot delay grows and the request
is retried later, until CHALLENGE_MAX_RETRIES. Only for hosts listed in CAPTCHA_AUTHORIZED_HOSTS
(the operator's own or partner shops) the captcha image is fetched, read by the OCR server over
the 2captcha protocol (or in-process by `cumpair.vision.ocr` when CAPTCHA_SERVER_URL is empty),
the form submitted and the original request resumed. Third-party challenges (reCAPTCHA,
hCaptcha, Turnstile) are never attempted: they always back off. Each back-off is also sent as
the `HOST_BACKED_OFF` signal, which Redis mode's shared pace (`shared_throttle.py`) turns into a
hold of the host for every crawler of it; that pace asks `ChallengeRules` too, to post the hold
before the challenged request gives up its turn (it sees the response before this middleware).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit

import aiohttp
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import FormRequest, Response, TextResponse
from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

INTERNAL = "challenge_internal"
"""Meta flag of the middleware's own requests (captcha image, answer form): never intercepted."""

#: Signal sent (request=, wait=) when a challenge makes this crawler leave a host alone for
#: `wait` seconds, so that other crawlers of the host can wait too.
HOST_BACKED_OFF = object()

THIRD_PARTY_MARKERS = (
    ".g-recaptcha",
    "iframe[src*='recaptcha']",
    "script[src*='recaptcha']",
    ".h-captcha",
    "iframe[src*='hcaptcha.com']",
    "script[src*='hcaptcha.com']",
    ".cf-turnstile",
    "script[src*='challenges.cloudflare.com']",
)


class CaptchaSolveError(Exception):
    """The captcha could not be read (server error, unsolvable, timeout)."""


@dataclass(frozen=True, slots=True)
class Markers:
    """CHALLENGE_MARKERS split into CSS selectors and `title:<regex>` title patterns."""

    selectors: tuple[str, ...]
    titles: tuple[re.Pattern[str], ...]

    @classmethod
    def parse(cls, entries: list[str]) -> Markers:
        selectors, titles = [], []
        for entry in entries:
            if entry.startswith("title:"):
                titles.append(re.compile(entry[len("title:") :], re.IGNORECASE))
            else:
                selectors.append(entry)
        return cls(tuple(selectors), tuple(titles))

    def match(self, response: TextResponse) -> str | None:
        """The first marker the page matches, or None."""
        for selector in self.selectors:
            if response.css(selector):
                return selector
        title = " ".join(response.css("title::text").getall()).strip()
        for pattern in self.titles:
            if pattern.search(title):
                return f"title:{pattern.pattern}"
        return None


#: Request meta keys: challenges backed off so far, captcha answers tried so far.
RETRIES = "challenge_times"
SOLVES = "captcha_solves"


@dataclass(frozen=True, slots=True)
class ChallengeRules:
    """What a challenge page is and how it is met, from settings: the middleware's decisions,
    and Redis mode's shared pace (which posts a back-off's hold before the page lets go of its
    host turn) asks the same ones."""

    status_codes: frozenset[int]
    markers: Markers
    third_party: tuple[str, ...]
    max_retries: int
    backoff_base: float
    backoff_max: float
    authorized: frozenset[str]
    solve_attempts: int

    @classmethod
    def from_settings(cls, s: BaseSettings) -> ChallengeRules | None:
        """The rules, or None when CHALLENGE_ENABLED is off."""
        if not s.getbool("CHALLENGE_ENABLED", True):
            return None
        codes = s.getlist("CHALLENGE_STATUS_CODES", [403, 429, 503])
        markers = ["form img.captcha", r"title:security check|are you (a )?(human|robot)"]
        return cls(
            status_codes=frozenset(int(c) for c in codes),
            markers=Markers.parse(s.getlist("CHALLENGE_MARKERS", markers)),
            third_party=tuple(s.getlist("CHALLENGE_THIRD_PARTY_MARKERS", THIRD_PARTY_MARKERS)),
            max_retries=s.getint("CHALLENGE_MAX_RETRIES", 3),
            backoff_base=s.getfloat("CHALLENGE_BACKOFF_BASE", 5.0),
            backoff_max=s.getfloat("CHALLENGE_BACKOFF_MAX", 300.0),
            authorized=frozenset(h.lower() for h in s.getlist("CAPTCHA_AUTHORIZED_HOSTS", [])),
            solve_attempts=s.getint("CAPTCHA_SOLVE_ATTEMPTS", 2),
        )

    def challenge(self, response: Response) -> str | None:
        """'third-party', the matched marker, or None when this is not a challenge page."""
        if response.status not in self.status_codes or not isinstance(response, TextResponse):
            return None
        for selector in self.third_party:
            if response.css(selector):
                return "third-party"
        return self.markers.match(response)

    def solves_first(self, request: Request, marker: str) -> bool:
        """Whether this challenge is answered (an authorized host's own captcha, attempts
        left) rather than backed off at once."""
        if marker == "third-party" or request.meta.get(SOLVES, 0) >= self.solve_attempts:
            return False
        parts = urlsplit(request.url)
        host = (parts.hostname or "").lower()
        return host in self.authorized or parts.netloc.lower() in self.authorized

    def backoff(self, request: Request) -> float | None:
        """Seconds a challenged request backs its host off, or None when it is given up."""
        retries = request.meta.get(RETRIES, 0)
        if retries >= self.max_retries:
            return None
        return min(self.backoff_max, self.backoff_base * 2**retries)

    def backoff_at_once(self, request: Request, response: Response) -> float | None:
        """The back-off this response makes the middleware send right away (None: no
        challenge, the middleware's own request, a captcha it answers first, or given up)."""
        if request.meta.get(INTERNAL):
            return None
        marker = self.challenge(response)
        if marker is None or self.solves_first(request, marker):
            return None
        return self.backoff(request)


class ChallengeMiddleware:
    """Downloader middleware; place it just above RetryAfterMiddleware (e.g. 560).

    Settings (defaults): CHALLENGE_ENABLED (True), CHALLENGE_STATUS_CODES ([403, 429, 503]),
    CHALLENGE_MARKERS (["form img.captcha", "title:security check|are you (a )?(human|robot)"]),
    CHALLENGE_THIRD_PARTY_MARKERS (reCAPTCHA/hCaptcha/Turnstile selectors),
    CHALLENGE_MAX_RETRIES (3), CHALLENGE_BACKOFF_BASE (5.0 s, doubled per retry),
    CHALLENGE_BACKOFF_MAX (300.0 s), CAPTCHA_AUTHORIZED_HOSTS ([]), CAPTCHA_SERVER_URL ("" =
    in-process OCR), CAPTCHA_API_KEY (""), CAPTCHA_SOLVE_ATTEMPTS (2 per request),
    CAPTCHA_SOLVE_TIMEOUT (60.0 s), CAPTCHA_POLL_INTERVAL (0.5 s), CAPTCHA_IMAGE_SELECTOR
    ("img.captcha"), CAPTCHA_ANSWER_FIELD ("answer").
    """

    def __init__(self, crawler: Crawler) -> None:
        s = crawler.settings
        rules = ChallengeRules.from_settings(s)
        if rules is None:
            raise NotConfigured
        self.crawler = crawler
        self.rules = rules
        self.server_url = s.get("CAPTCHA_SERVER_URL", "").rstrip("/")
        self.api_key = s.get("CAPTCHA_API_KEY", "")
        self.solve_timeout = s.getfloat("CAPTCHA_SOLVE_TIMEOUT", 60.0)
        self.poll_interval = s.getfloat("CAPTCHA_POLL_INTERVAL", 0.5)
        self.image_selector = s.get("CAPTCHA_IMAGE_SELECTOR", "img.captcha")
        self.answer_field = s.get("CAPTCHA_ANSWER_FIELD", "answer")
        self._session: aiohttp.ClientSession | None = None
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    async def spider_closed(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get(INTERNAL):
            return response
        marker = self.rules.challenge(response)
        if marker is None:
            return response
        stats = self.crawler.stats
        stats.inc_value("challenge/detected")
        if marker == "third-party":
            stats.inc_value("challenge/third_party")
        elif self.rules.solves_first(request, marker):
            return await self._solve_and_resume(request, response)
        return await self._back_off(request, response, f"challenge page ({marker})")

    # -- backing off ---------------------------------------------------------------------------

    async def _back_off(
        self, request: Request, response: Response, reason: str
    ) -> Request | Response:
        stats = self.crawler.stats
        retries = request.meta.get(RETRIES, 0)
        wait = self.rules.backoff(request)
        if wait is None:
            stats.inc_value("challenge/gave_up")
            logger.warning("Gave up on %s after %d challenges: %s", request, retries, reason)
            return response
        self._slow_down_host(request, wait)
        await self.crawler.signals.send_catch_log_async(HOST_BACKED_OFF, request=request, wait=wait)
        stats.inc_value("challenge/backoff")
        logger.info("Challenged on %s (%s): retrying after %.1f s", request, reason, wait)
        retry = request.replace(dont_filter=True, priority=request.priority - 1)
        retry.meta[RETRIES] = retries + 1
        return retry

    def _slow_down_host(self, request: Request, wait: float) -> None:
        downloader = self.crawler.engine.downloader
        slot = downloader.slots.get(downloader.get_slot_key(request))
        if slot is not None and wait > slot.delay:
            slot.delay = wait
        self.crawler.stats.max_value("challenge/max_delay", wait)

    # -- solving (authorized hosts only) -----------------------------------------------------

    async def _solve_and_resume(self, request: Request, page: Response) -> Request | Response:
        stats = self.crawler.stats
        solves = request.meta.get(SOLVES, 0) + 1
        resume = request.replace(dont_filter=True)
        resume.meta[SOLVES] = solves
        img_src = page.css(f"{self.image_selector}::attr(src)").get()
        if not img_src or not isinstance(page, TextResponse):
            return await self._back_off(request, page, "challenge without a captcha image")
        try:
            image = await self._fetch(Request(page.urljoin(img_src), dont_filter=True))
            answer, task_id = await self._read(image.body)
        except (CaptchaSolveError, IgnoreRequest) as exc:
            stats.inc_value("challenge/solve_failed")
            logger.warning("Could not solve the captcha on %s: %s", request, exc)
            return await self._back_off(resume, page, f"captcha unsolved: {exc}")
        xpath = "//form[.//img[contains(concat(' ', normalize-space(@class), ' '), ' captcha ')]]"
        form = FormRequest.from_response(
            page, formxpath=xpath, formdata={self.answer_field: answer}, dont_filter=True
        )
        form.meta.update({"dont_redirect": True, "handle_httpstatus_all": True})
        verdict = await self._fetch(form)
        if 300 <= verdict.status < 400:
            stats.inc_value("challenge/solved")
            await self._report(task_id, good=True)
            return resume
        stats.inc_value("challenge/solve_failed")
        await self._report(task_id, good=False)
        # A wrong answer gets a fresh challenge: try again (bounded by CAPTCHA_SOLVE_ATTEMPTS).
        return resume

    async def _fetch(self, request: Request) -> Response:
        request.meta[INTERNAL] = True
        response = await self.crawler.engine.download_async(request)
        self.crawler.stats.inc_value("challenge/requests")
        return response

    async def _read(self, image: bytes) -> tuple[str, str | None]:
        if not self.server_url:
            return await asyncio.to_thread(_read_in_process, image), None
        return await self._read_via_server(image)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.solve_timeout)
            )
        return self._session

    async def _read_via_server(self, image: bytes) -> tuple[str, str]:
        """2captcha v1: in.php (base64, json=1) then poll res.php until ready."""
        deadline = time.monotonic() + self.solve_timeout
        try:
            form = {
                "key": self.api_key,
                "method": "base64",
                "body": base64.b64encode(image).decode(),
                "json": "1",
            }
            async with self._http().post(f"{self.server_url}/in.php", data=form) as r:
                sent = await r.json(content_type=None)
            if sent.get("status") != 1:
                raise CaptchaSolveError(f"in.php: {sent.get('request')}")
            task_id = str(sent["request"])
            params = {"key": self.api_key, "action": "get", "id": task_id, "json": "1"}
            while time.monotonic() < deadline:
                async with self._http().get(f"{self.server_url}/res.php", params=params) as r:
                    got = await r.json(content_type=None)
                if got.get("status") == 1:
                    return str(got["request"]), task_id
                if got.get("request") != "CAPCHA_NOT_READY":
                    raise CaptchaSolveError(f"res.php: {got.get('request')}")
                await asyncio.sleep(self.poll_interval)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise CaptchaSolveError(f"OCR server unreachable: {exc}") from exc
        raise CaptchaSolveError(f"no answer within {self.solve_timeout:.0f} s")

    async def _report(self, task_id: str | None, good: bool) -> None:
        if task_id is None or not self.server_url:
            return
        params = {"key": self.api_key, "action": "reportgood" if good else "reportbad"}
        try:
            async with self._http().get(
                f"{self.server_url}/res.php", params={**params, "id": task_id}
            ) as r:
                await r.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.debug("report to OCR server failed: %s", exc)


def _read_in_process(image: bytes) -> str:
    """The vision library's fallback chain, in a worker thread (engines load once)."""
    from cumpair.vision.images import ImageError
    from cumpair.vision.ocr import OcrOptions, recognize

    try:
        text = recognize(image, OcrOptions(phrase=False)).text.strip()
    except ImageError as exc:
        raise CaptchaSolveError(f"captcha image unusable: {exc}") from exc
    if not text:
        raise CaptchaSolveError("no text read")
    return text
