"""The aiohttp application factory: routes, and the queue's lifecycle on startup/cleanup."""

from __future__ import annotations

from aiohttp import web

from captcha_server import native, protocol_v1, protocol_v2
from captcha_server.config import ServerConfig
from captcha_server.errors import CaptchaError
from captcha_server.local_queue import LocalQueue
from captcha_server.protocol_v1 import SERVICE
from captcha_server.redis_queue import RedisQueue
from captcha_server.service import Service
from captcha_server.tasks import TaskQueue

# Bodies up to 4x the image limit are read, so an oversize image still gets its documented
# error in the client's chosen mode (json=1 may sit after the image); anything bigger is cut
# off while reading and answered in plain text.
_BODY_OVERHEAD = 256 * 1024


def make_queue(config: ServerConfig) -> TaskQueue:
    if config.redis_url:
        return RedisQueue(config.redis_url, config.queue)
    return LocalQueue(config.queue, config.workers, config.engines)


async def health(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    report = await service.queue.health()
    return web.json_response(report, status=200 if report["ok"] else 503)


async def stats(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        return web.json_response(await service.stats(native.request_key(request)))
    except CaptchaError as exc:
        return native.error_response(exc, service)


def create_app(config: ServerConfig, queue: TaskQueue | None = None) -> web.Application:
    """Build the app; the queue starts with the app and closes with it."""
    service = Service(config, queue or make_queue(config))
    app = web.Application(client_max_size=4 * config.limits.max_bytes + _BODY_OVERHEAD)
    app[SERVICE] = service

    async def start_queue(_: web.Application) -> None:
        await service.queue.start()

    async def close_queue(_: web.Application) -> None:
        await service.queue.close()

    app.on_startup.append(start_queue)
    app.on_cleanup.append(close_queue)
    app.add_routes(
        [
            web.post("/in.php", protocol_v1.in_php),
            web.get("/res.php", protocol_v1.res_php),
            web.post("/res.php", protocol_v1.res_php),
            web.post("/createTask", protocol_v2.create_task),
            web.post("/getTaskResult", protocol_v2.get_task_result),
            web.post("/getBalance", protocol_v2.get_balance),
            web.post("/reportCorrect", protocol_v2.report_correct),
            web.post("/reportIncorrect", protocol_v2.report_incorrect),
            web.post("/v1/ocr", native.ocr),
            web.get("/v1/jobs/{id}", native.job),
            web.get("/health", health),
            web.get("/stats", stats),
        ]
    )
    return app
