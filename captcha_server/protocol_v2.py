"""2captcha API v2 (JSON): createTask (ImageToTextTask only), getTaskResult, getBalance,
reportCorrect / reportIncorrect. Errors answer `{"errorId": N, "errorCode": ..., ...}`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from captcha_server.errors import CaptchaError
from captcha_server.fields import json_object, task_id, text
from captcha_server.options import TaskOptions
from captcha_server.protocol_v1 import SERVICE
from captcha_server.service import Service
from captcha_server.tasks import State
from captcha_server.upload import decode_base64

SUPPORTED_TASKS = frozenset({"ImageToTextTask"})


def _error(exc: CaptchaError, service: Service) -> web.Response:
    service.errors[exc.code] += 1
    return web.json_response(
        {"errorId": exc.v2_id, "errorCode": exc.v2_code, "errorDescription": exc.detail}
    )


async def _payload(request: web.Request, service: Service) -> dict[str, Any]:
    return json_object(await service.bodies.read(request, request.read), request.charset)


def _client_key(data: dict[str, Any]) -> str | None:
    return text(data, "clientKey", "ERROR_WRONG_USER_KEY")


async def create_task(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        data = await _payload(request, service)
        key = service.authenticate(_client_key(data))
        task = data.get("task")
        if not isinstance(task, dict):
            raise CaptchaError("ERROR_TASK_ABSENT")
        kind = text(task, "type", "ERROR_TASK_NOT_SUPPORTED")
        if kind not in SUPPORTED_TASKS:
            raise CaptchaError("ERROR_TASK_NOT_SUPPORTED", f"task type {kind!r}")
        image = decode_base64(text(task, "body"))
        options = TaskOptions.from_v2(task, text(data, "languagePool"))
        record = await service.submit(key, image, options)
    except CaptchaError as exc:
        return _error(exc, service)
    return web.json_response({"errorId": 0, "taskId": int(record.id)})


async def get_task_result(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        data = await _payload(request, service)
        key = service.authenticate(_client_key(data))
        record = await service.lookup(key, task_id(data, "taskId"))
        if record is None or not record.final:
            return web.json_response({"errorId": 0, "status": "processing"})
        if record.state is State.UNSOLVABLE or record.solution is None:
            raise CaptchaError("ERROR_CAPTCHA_UNSOLVABLE")
    except CaptchaError as exc:
        return _error(exc, service)
    return web.json_response(
        {
            "errorId": 0,
            "status": "ready",
            "solution": {"text": record.solution.text},
            "cost": "0",
            "ip": request.remote or "",
            "createTime": int(record.created),
            "endTime": int(record.finished or record.created),
            "solveCount": record.attempts,
        }
    )


async def get_balance(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        service.authenticate(_client_key(await _payload(request, service)))
    except CaptchaError as exc:
        return _error(exc, service)
    return web.json_response({"errorId": 0, "balance": service.config.balance})


async def _report(request: web.Request, good: bool) -> web.Response:
    service = request.app[SERVICE]
    try:
        data = await _payload(request, service)
        key = service.authenticate(_client_key(data))
        await service.report(key, task_id(data, "taskId"), good=good)
    except CaptchaError as exc:
        return _error(exc, service)
    return web.json_response({"errorId": 0, "status": "success"})


async def report_correct(request: web.Request) -> web.Response:
    return await _report(request, good=True)


async def report_incorrect(request: web.Request) -> web.Response:
    return await _report(request, good=False)
