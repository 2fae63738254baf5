"""2captcha API v2 (JSON): createTask (ImageToTextTask only), getTaskResult, getBalance,
reportCorrect / reportIncorrect. Errors answer `{"errorId": N, "errorCode": ..., ...}`."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from captcha_server.errors import CaptchaError
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


async def _payload(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json(loads=json.loads)
    except web.HTTPRequestEntityTooLarge as exc:
        raise CaptchaError("ERROR_TOO_BIG_CAPTCHA_FILESIZE") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise CaptchaError("ERROR_BAD_PARAMETERS", "body is not JSON") from exc
    if not isinstance(data, dict):
        raise CaptchaError("ERROR_BAD_PARAMETERS", "body must be a JSON object")
    return data


def _task_id(data: dict[str, Any]) -> str:
    value = data.get("taskId")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise CaptchaError("ERROR_WRONG_ID_FORMAT")
    return str(value)


async def create_task(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        data = await _payload(request)
        key = service.authenticate(data.get("clientKey"))
        task = data.get("task")
        if not isinstance(task, dict):
            raise CaptchaError("ERROR_TASK_ABSENT")
        if task.get("type") not in SUPPORTED_TASKS:
            raise CaptchaError("ERROR_TASK_NOT_SUPPORTED", f"task type {task.get('type')!r}")
        image = decode_base64(task.get("body"))
        options = TaskOptions.from_v2(task, data.get("languagePool"))
        record = await service.submit(key, image, options)
    except CaptchaError as exc:
        return _error(exc, service)
    return web.json_response({"errorId": 0, "taskId": int(record.id)})


async def get_task_result(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        data = await _payload(request)
        key = service.authenticate(data.get("clientKey"))
        record = await service.lookup(key, _task_id(data))
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
        service.authenticate((await _payload(request)).get("clientKey"))
    except CaptchaError as exc:
        return _error(exc, service)
    return web.json_response({"errorId": 0, "balance": service.config.balance})


async def _report(request: web.Request, good: bool) -> web.Response:
    service = request.app[SERVICE]
    try:
        data = await _payload(request)
        key = service.authenticate(data.get("clientKey"))
        await service.report(key, _task_id(data), good=good)
    except CaptchaError as exc:
        return _error(exc, service)
    return web.json_response({"errorId": 0, "status": "success"})


async def report_correct(request: web.Request) -> web.Response:
    return await _report(request, good=True)


async def report_incorrect(request: web.Request) -> web.Response:
    return await _report(request, good=False)
