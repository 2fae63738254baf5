"""2captcha API v1: `POST /in.php` and `GET /res.php`, plain (`OK|...`) or JSON (`json=1`).

Like the real service, every answer is HTTP 200 and errors travel in the body, so stock clients
(which test `'ERROR' in body`) behave exactly as they do against 2captcha.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import MultiDict

from captcha_server.errors import CaptchaError
from captcha_server.fields import text
from captcha_server.options import TaskOptions
from captcha_server.service import Service
from captcha_server.tasks import State, TaskRecord
from captcha_server.upload import check_extension, decode_base64

SERVICE = web.AppKey("service", Service)


def _ok(value: str, as_json: bool, prefixed: bool = True) -> web.Response:
    """Success: `OK|value` (or the bare value for balance/reports) or `{"status":1,...}`."""
    if as_json:
        return web.json_response({"status": 1, "request": value})
    return web.Response(text=f"OK|{value}" if prefixed else value)


def _not_ready(as_json: bool) -> web.Response:
    if as_json:
        return web.json_response({"status": 0, "request": "CAPCHA_NOT_READY"})
    return web.Response(text="CAPCHA_NOT_READY")


def _error(exc: CaptchaError, as_json: bool, service: Service) -> web.Response:
    service.errors[exc.code] += 1
    if as_json:
        return web.json_response({"status": 0, "request": exc.code, "error_text": exc.detail})
    return web.Response(text=exc.code)


async def _fields(request: web.Request, service: Service) -> tuple[MultiDict[Any], bool]:
    """Query string plus form body; the `json` flag is known even when the body is too big."""
    fields: MultiDict[Any] = MultiDict(request.query)
    as_json = fields.get("json") == "1"
    if request.method == "POST":
        try:
            fields.extend(await service.bodies.read(request, request.post))
        except ValueError as exc:  # malformed multipart / urlencoded body
            raise CaptchaError("ERROR_UPLOAD", str(exc)) from exc
    return fields, fields.get("json") == "1" or as_json


def _image(fields: Mapping[str, Any]) -> bytes:
    method = (text(fields, "method") or "").lower()
    if method == "base64":
        return decode_base64(text(fields, "body"))
    if method == "post":
        upload = fields.get("file")
        if not isinstance(upload, web.FileField):
            raise CaptchaError("ERROR_UPLOAD", "method=post needs a multipart 'file'")
        check_extension(upload.filename)
        return upload.file.read()
    if not method:
        raise CaptchaError("ERROR_BAD_PARAMETERS", "method is missing")
    raise CaptchaError("ERROR_BAD_PARAMETERS", f"method={method} is not supported (image only)")


async def in_php(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    as_json = request.query.get("json") == "1"
    fields: MultiDict[Any] = MultiDict()
    try:
        fields, as_json = await _fields(request, service)
        key = service.authenticate(text(fields, "key", "ERROR_WRONG_USER_KEY"))
        image = _image(fields)
        options = TaskOptions.from_v1(fields)
        record = await service.submit(key, image, options)
    except CaptchaError as exc:
        return _error(exc, as_json, service)
    finally:
        # aiohttp spools uploads to anonymous temporary files; release them now, not at GC.
        for value in fields.values():
            if isinstance(value, web.FileField):
                value.file.close()
    return _ok(record.id, as_json)


def _answer(record: TaskRecord | None) -> str:
    if record is None or not record.final:
        return "CAPCHA_NOT_READY"
    if record.state is State.UNSOLVABLE or record.solution is None:
        return "ERROR_CAPTCHA_UNSOLVABLE"
    return record.solution.text


async def res_php(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    as_json = request.query.get("json") == "1"
    try:
        fields, as_json = await _fields(request, service)
        key = service.authenticate(text(fields, "key", "ERROR_WRONG_USER_KEY"))
        action = (text(fields, "action", "ERROR_EMPTY_ACTION") or "").lower()
        if action in ("get", "get2"):
            return await _get(service, key, fields, as_json, with_price=action == "get2")
        if action in ("reportbad", "reportgood"):
            task_id = text(fields, "id", "ERROR_WRONG_ID_FORMAT")
            await service.report(key, task_id, good=action == "reportgood")
            return _ok("OK_REPORT_RECORDED", as_json, prefixed=False)
        if action == "getbalance":
            return _ok(f"{service.config.balance:.2f}", as_json, prefixed=False)
        raise CaptchaError("ERROR_EMPTY_ACTION", f"unknown action {action!r}" if action else None)
    except CaptchaError as exc:
        return _error(exc, as_json, service)


async def _get(
    service: Service, key: str, fields: Mapping[str, Any], as_json: bool, with_price: bool
) -> web.Response:
    ids = text(fields, "ids", "ERROR_WRONG_ID_FORMAT")
    if ids is not None:
        answers = []
        for task_id in ids.split(","):
            try:
                answers.append(_answer(await service.lookup(key, task_id)))
            except CaptchaError as exc:
                answers.append(exc.code)
        joined = "|".join(answers)
        if as_json:
            return web.json_response({"status": 1, "request": joined})
        return web.Response(text=joined)
    answer = _answer(await service.lookup(key, text(fields, "id", "ERROR_WRONG_ID_FORMAT")))
    if answer == "CAPCHA_NOT_READY":
        return _not_ready(as_json)
    if answer.startswith("ERROR_"):
        raise CaptchaError(answer)
    if with_price:
        if as_json:
            return web.json_response({"status": 1, "request": answer, "price": "0"})
        return web.Response(text=f"OK|{answer}|0")
    return _ok(answer, as_json)
