"""Native JSON API: `POST /v1/ocr` (sync with timeout, or `?async=1`) and `GET /v1/jobs/{id}`.

Returns what the chain knows (text, confidence, engine, variant, word boxes) and, with
`specs=1`, the spec facts of `cumpair.vision.specs`. Errors use HTTP status codes.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDict

from captcha_server.errors import CaptchaError
from captcha_server.fields import flag, json_object, mapping, number, text
from captcha_server.options import TaskOptions
from captcha_server.protocol_v1 import SERVICE
from captcha_server.service import Service
from captcha_server.tasks import State, TaskRecord
from captcha_server.upload import decode_base64

HTTP_STATUS = {
    "ERROR_WRONG_USER_KEY": 401,
    "ERROR_KEY_DOES_NOT_EXIST": 401,
    "ERROR_TOO_BIG_CAPTCHA_FILESIZE": 413,
    "ERROR_IMAGE_TYPE_NOT_SUPPORTED": 415,
    "ERROR_WRONG_FILE_EXTENSION": 415,
    "MAX_USER_TURN": 429,
    "ERROR_NO_SLOT_AVAILABLE": 503,
    "ERROR_WRONG_CAPTCHA_ID": 404,
    "ERROR_WRONG_ID_FORMAT": 404,
    "ERROR_CAPTCHA_UNSOLVABLE": 422,
}


def error_response(exc: CaptchaError, service: Service) -> web.Response:
    service.errors[exc.code] += 1
    return web.json_response(
        {"error": exc.code, "detail": exc.detail}, status=HTTP_STATUS.get(exc.code, 400)
    )


def request_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("X-API-Key") or request.query.get("key")


async def _read(request: web.Request, service: Service) -> tuple[bytes, MultiDict[Any]]:
    """Image and options from multipart (`file`), JSON (`image` base64) or a raw image body."""
    params: MultiDict[Any] = MultiDict(request.query)
    try:
        if request.content_type == "multipart/form-data":
            form = await service.bodies.read(request, request.post)
            upload = form.get("file") or form.get("image")
            params.extend((k, v) for k, v in form.items() if not isinstance(v, web.FileField))
            if not isinstance(upload, web.FileField):
                raise CaptchaError("ERROR_UPLOAD", "multipart body needs a 'file' part")
            try:
                return upload.file.read(), params
            finally:
                upload.file.close()
        body = await service.bodies.read(request, request.read)
        if request.content_type == "application/json":
            data = json_object(body, request.charset)
            params.extend((mapping(data, "options") or {}).items())
            if "specs" in data:
                params["specs"] = data["specs"]
            return decode_base64(text(data, "image")), params
        return body, params
    except ValueError as exc:
        raise CaptchaError("ERROR_BAD_PARAMETERS", str(exc)) from exc


def job_view(record: TaskRecord) -> dict[str, Any]:
    view: dict[str, Any] = {"id": record.id, "state": record.state.value}
    sol = record.solution
    if record.state is State.DONE and sol is not None:
        view.update(
            text=sol.text,
            confidence=round(sol.confidence, 4),
            engine=sol.engine,
            variant=sol.variant,
            boxes=sol.words,
            solve_ms=round(sol.solve_s * 1000, 2),
        )
        if sol.specs is not None:
            view["specs"] = sol.specs
    elif record.state is State.UNSOLVABLE:
        view["error"] = "ERROR_CAPTCHA_UNSOLVABLE"
    return view


async def ocr(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        key = service.authenticate(request_key(request))
        image, params = await _read(request, service)
        options = TaskOptions.from_v1(params)
        want_specs, run_async = flag(params, "specs"), flag(params, "async")
        timeout = number(params, "timeout", service.config.sync_timeout_s)
        timeout = min(max(timeout, 0.0), service.config.sync_timeout_s)
        record = await service.submit(key, image, options, want_specs=want_specs)
        if run_async:
            return web.json_response({"id": record.id, "state": record.state.value}, status=202)
        done = await service.wait(key, record.id, timeout)
    except CaptchaError as exc:
        return error_response(exc, service)
    if done is None or not done.final:
        # Still queued: the client may poll GET /v1/jobs/{id}.
        return web.json_response({"id": record.id, "state": "pending"}, status=504)
    return web.json_response(job_view(done), status=200 if done.finished_ok else 422)


async def job(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        key = service.authenticate(request_key(request))
        record = await service.lookup(key, request.match_info["id"])
    except CaptchaError as exc:
        return error_response(exc, service)
    if record is None:
        return web.json_response({"id": request.match_info["id"], "state": "unknown"}, status=503)
    return web.json_response(job_view(record))
