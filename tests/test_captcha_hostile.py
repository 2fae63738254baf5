"""Hostile clients against the real app over loopback HTTP: malformed JSON and form types, a
decompression bomb, bodies that never finish, and `/stats` seen by a plain key and an admin.

The app runs in-process on aiohttp's test server with the Redis queue on a private redis-server
and no worker: every request here is answered before or at the queue, so no OCR engine loads.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from captcha_server.app import create_app
from captcha_server.config import Limits, ServerConfig
from captcha_server.redis_runner import RedisRunner
from tests.captcha_fixtures import ADMIN_KEY, KEY, OTHER_KEY, b64, bomb_png, text_png

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PNG = text_png("7KX4P")
IMAGE_TASK = {"type": "ImageToTextTask", "body": b64(PNG)}
DEEP = "[" * 100_000 + "]" * 100_000  # deeper than json's recursion limit


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with RedisRunner(tmp_path_factory.mktemp("redis")) as runner:
        yield runner.url


def make_app(redis_url: str, **limits):
    redis.Redis.from_url(redis_url).flushdb()
    config = ServerConfig(
        api_keys=frozenset({KEY, OTHER_KEY}),
        admin_keys=frozenset({ADMIN_KEY}),
        redis_url=redis_url,
        rate_per_s=0,
        limits=Limits(**limits),
    )
    return create_app(config)


@pytest.fixture
async def client(aiohttp_client, redis_url):
    return await aiohttp_client(make_app(redis_url))


# -- item 5: wrong JSON types, wrong form part types -------------------------------------------

V2_MALFORMED = [
    ("clientKey is a number", "/createTask", {"clientKey": 12345, "task": IMAGE_TASK},
     1, "ERROR_KEY_DOES_NOT_EXIST"),
    ("clientKey is a list", "/getBalance", {"clientKey": [KEY]}, 1, "ERROR_KEY_DOES_NOT_EXIST"),
    ("clientKey is an object", "/getTaskResult", {"clientKey": {"k": KEY}, "taskId": 1},
     1, "ERROR_KEY_DOES_NOT_EXIST"),
    ("task is a list", "/createTask", {"clientKey": KEY, "task": [IMAGE_TASK]},
     22, "ERROR_TASK_ABSENT"),
    ("task.type is a list", "/createTask",
     {"clientKey": KEY, "task": {**IMAGE_TASK, "type": ["ImageToTextTask"]}},
     23, "ERROR_TASK_NOT_SUPPORTED"),
    ("task.body is a number", "/createTask", {"clientKey": KEY, "task": {**IMAGE_TASK, "body": 5}},
     110, "ERROR_BAD_PARAMETERS"),
    ("task.body is a list", "/createTask",
     {"clientKey": KEY, "task": {**IMAGE_TASK, "body": [b64(PNG)]}}, 110, "ERROR_BAD_PARAMETERS"),
    ("task.numeric is a float", "/createTask",
     {"clientKey": KEY, "task": {**IMAGE_TASK, "numeric": 1.5}}, 110, "ERROR_BAD_PARAMETERS"),
    ("task.minLength is a list", "/createTask",
     {"clientKey": KEY, "task": {**IMAGE_TASK, "minLength": [3]}}, 110, "ERROR_BAD_PARAMETERS"),
    ("task.phrase is a word", "/createTask",
     {"clientKey": KEY, "task": {**IMAGE_TASK, "phrase": "maybe"}}, 110, "ERROR_BAD_PARAMETERS"),
    ("task.comment is an object", "/createTask",
     {"clientKey": KEY, "task": {**IMAGE_TASK, "comment": {"a": 1}}}, 110, "ERROR_BAD_PARAMETERS"),
    ("languagePool is a number", "/createTask",
     {"clientKey": KEY, "task": IMAGE_TASK, "languagePool": 5}, 110, "ERROR_BAD_PARAMETERS"),
    ("taskId is a list", "/getTaskResult", {"clientKey": KEY, "taskId": [1]},
     16, "ERROR_NO_SUCH_CAPCHA_ID"),
    ("taskId is a float", "/reportIncorrect", {"clientKey": KEY, "taskId": 1.5},
     16, "ERROR_NO_SUCH_CAPCHA_ID"),
    ("taskId nested deep", "/getTaskResult", f'{{"clientKey": "{KEY}", "taskId": {DEEP}}}',
     110, "ERROR_BAD_PARAMETERS"),
    ("body nested deep", "/getTaskResult", DEEP, 110, "ERROR_BAD_PARAMETERS"),
    ("body is a list", "/getBalance", [KEY], 110, "ERROR_BAD_PARAMETERS"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "path", "payload", "error_id", "code"), V2_MALFORMED, ids=[c[0] for c in V2_MALFORMED]
)
async def test_v2_malformed_types_get_the_protocol_error(
    client, case, path, payload, error_id, code
):
    body = payload if isinstance(payload, str) else json.dumps(payload)
    r = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert r.status == 200
    got = await r.json()
    assert (got["errorId"], got["errorCode"]) == (error_id, code)


async def test_v2_body_in_an_unknown_charset_is_bad_parameters(client):
    headers = {"Content-Type": "application/json; charset=no-such-charset"}
    r = await client.post("/getBalance", data=json.dumps({"clientKey": KEY}), headers=headers)
    assert (await r.json())["errorCode"] == "ERROR_BAD_PARAMETERS"


def _form(**parts: str | bytes) -> aiohttp.FormData:
    """A multipart form; bytes values are sent as file parts."""
    form = aiohttp.FormData()
    for name, value in parts.items():
        if isinstance(value, bytes):
            form.add_field(name, value, filename=f"{name}.png", content_type="image/png")
        else:
            form.add_field(name, value)
    return form


V1_MALFORMED = [
    ("key sent as a file", "/in.php",
     {"key": KEY.encode(), "method": "base64", "body": b64(PNG)}, "ERROR_WRONG_USER_KEY"),
    ("body sent as a file", "/in.php", {"key": KEY, "method": "base64", "body": PNG},
     "ERROR_BAD_PARAMETERS"),
    ("method sent as a file", "/in.php", {"key": KEY, "method": b"post", "file": PNG},
     "ERROR_BAD_PARAMETERS"),
    ("numeric sent as a file", "/in.php",
     {"key": KEY, "method": "base64", "body": b64(PNG), "numeric": b"1"}, "ERROR_BAD_PARAMETERS"),
    ("textinstructions sent as a file", "/in.php",
     {"key": KEY, "method": "base64", "body": b64(PNG), "textinstructions": b"read it"},
     "ERROR_BAD_PARAMETERS"),
    ("id sent as a file", "/res.php", {"key": KEY, "action": "get", "id": b"123"},
     "ERROR_WRONG_ID_FORMAT"),
    ("ids sent as a file", "/res.php", {"key": KEY, "action": "get", "ids": b"1,2"},
     "ERROR_WRONG_ID_FORMAT"),
    ("action sent as a file", "/res.php", {"key": KEY, "action": b"get", "id": "1"},
     "ERROR_EMPTY_ACTION"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "path", "parts", "code"), V1_MALFORMED, ids=[c[0] for c in V1_MALFORMED]
)
async def test_v1_form_fields_of_the_wrong_kind_get_the_protocol_error(
    client, case, path, parts, code
):
    r = await client.post(path, data=_form(**parts))
    assert (r.status, await r.text()) == (200, code)
    r = await client.post(path, params={"json": "1"}, data=_form(**parts))
    assert (await r.json())["request"] == code


NATIVE_MALFORMED = [
    ("image is a list", {}, {"image": [1, 2]}),
    ("image is a number", {}, {"image": 5}),
    ("options is a list", {}, {"image": b64(PNG), "options": [1]}),
    ("options is a string", {}, {"image": b64(PNG), "options": "numeric=1"}),
    ("option value is a list", {}, {"image": b64(PNG), "options": {"numeric": [1]}}),
    ("option text is a number", {}, {"image": b64(PNG), "options": {"textinstructions": 5}}),
    ("specs is a list", {}, {"image": b64(PNG), "specs": [1]}),
    ("body nested deep", {}, DEEP),
    ("timeout is nan", {"timeout": "nan"}, {"image": b64(PNG)}),
    ("async is a word", {"async": "later"}, {"image": b64(PNG)}),
]


@pytest.mark.parametrize(
    ("case", "params", "payload"), NATIVE_MALFORMED, ids=[c[0] for c in NATIVE_MALFORMED]
)
async def test_native_malformed_json_is_400_bad_parameters_and_queues_nothing(
    client, redis_url, case, params, payload
):
    body = payload if isinstance(payload, str) else json.dumps(payload)
    r = await client.post(
        "/v1/ocr",
        params=params,
        data=body,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert r.status == 400
    assert (await r.json())["error"] == "ERROR_BAD_PARAMETERS"
    assert redis.Redis.from_url(redis_url).llen("captcha:pending") == 0


# -- item 6: a decompression bomb is too big, not "not an image" ---------------------------------


async def test_decompression_bomb_is_too_big_in_every_protocol(client):
    bomb = bomb_png()  # 30000x30000 in ~7 KB: Pillow's own bomb check fires inside Image.open
    assert len(bomb) < Limits().max_bytes
    r = await client.post("/in.php", data={"key": KEY, "method": "base64", "body": b64(bomb)})
    assert await r.text() == "ERROR_TOO_BIG_CAPTCHA_FILESIZE"
    task = {"type": "ImageToTextTask", "body": b64(bomb)}
    got = await (await client.post("/createTask", json={"clientKey": KEY, "task": task})).json()
    assert (got["errorId"], got["errorCode"]) == (4, "ERROR_TOO_BIG_CAPTCHA_FILESIZE")
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "image/png"}
    r = await client.post("/v1/ocr", data=bomb, headers=auth)
    assert r.status == 413


# -- item 7: bodies that never finish --------------------------------------------------------


def _half_upload(host: str, port: int) -> bytes:
    """An in.php request whose Content-Length promises twice the body that follows."""
    body = f"key={KEY}&method=base64&body={b64(PNG)}".encode()
    head = (
        f"POST /in.php HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {2 * len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _send_half_and_read_answer(host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(_half_upload(host, port))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
                     .split(b":")[1])  # fmt: skip
        return await reader.readexactly(length)
    finally:
        writer.close()


async def admin_stats(client) -> dict:
    return await (await client.get("/stats", params={"key": ADMIN_KEY})).json()


async def test_bodies_that_never_finish_are_cut_refused_beyond_the_limit_and_counted(
    aiohttp_client, redis_url
):
    client = await aiohttp_client(make_app(redis_url, body_timeout_s=2.0, max_uploads=8))
    host, port = client.server.host, client.server.port
    answers = await asyncio.wait_for(
        asyncio.gather(*(_send_half_and_read_answer(host, port) for _ in range(300))), 60
    )
    assert sorted(set(answers)) == [b"ERROR_NO_SLOT_AVAILABLE", b"ERROR_UPLOAD"]
    assert answers.count(b"ERROR_UPLOAD") == 8
    uploads = (await admin_stats(client))["uploads"]
    assert (uploads["timed_out"], uploads["refused_busy"], uploads["in_flight"]) == (8, 292, 0)
    # The slots are free again: a whole request is served.
    form = {"key": KEY, "method": "base64", "body": b64(PNG)}
    assert (await (await client.post("/in.php", data=form)).text()).startswith("OK|")


async def test_a_slow_body_holds_its_slot_until_cut_and_is_logged(
    aiohttp_client, redis_url, caplog
):
    client = await aiohttp_client(make_app(redis_url, body_timeout_s=1.0, max_uploads=1))
    host, port = client.server.host, client.server.port
    slow = asyncio.create_task(_send_half_and_read_answer(host, port))
    while (await admin_stats(client))["uploads"]["in_flight"] == 0:
        await asyncio.sleep(0.02)
    task = {"clientKey": KEY, "task": IMAGE_TASK}
    busy = await (await client.post("/createTask", json=task)).json()
    assert busy["errorCode"] == "ERROR_NO_SLOT_AVAILABLE"
    assert await slow == b"ERROR_UPLOAD"
    assert "body not complete after 1.0 s" in caplog.text
    assert (await (await client.post("/createTask", json=task)).json())["errorId"] == 0


# -- item 8: /stats per key, global for an admin ----------------------------------------------


async def test_stats_show_a_key_its_own_counters_and_an_admin_the_server(client):
    form = {"method": "base64", "body": b64(PNG)}
    for key, n in ((KEY, 2), (OTHER_KEY, 1)):
        for _ in range(n):
            assert (await (await client.post("/in.php", data={**form, "key": key})).text())[:3] == (
                "OK|"
            )
    own = await (await client.get("/stats", params={"key": KEY})).json()
    other = await (await client.get("/stats", headers={"X-API-Key": OTHER_KEY})).json()
    admin = await admin_stats(client)
    assert (own["scope"], own["submitted"], other["submitted"]) == ("key", 2, 1)
    assert not {"queue_depth", "latency", "errors", "uploads"} & (own.keys() | other.keys())
    assert (admin["scope"], admin["submitted"], admin["queue_depth"]) == ("server", 3, 3)
    assert {"latency", "errors", "uploads"} <= admin.keys()


async def test_admin_key_only_reads_stats(client):
    r = await client.post("/in.php", data={"key": ADMIN_KEY, "method": "base64", "body": b64(PNG)})
    assert await r.text() == "ERROR_KEY_DOES_NOT_EXIST"
    assert (await client.get("/stats", params={"key": "Z" * 32})).status == 401


# -- shutdown: every app above closes its Redis queue ------------------------------------------


async def test_app_in_redis_mode_shuts_down_after_serving_requests(redis_url):
    # redis-py's blocking pub/sub read swallowed the cancellation the queue's close() used to
    # send, so a server in Redis mode that had served a request never finished shutting down;
    # the bound only turns that hang into a failure. It waits without cancelling: the old close()
    # suppressed CancelledError, so wait_for's cancel would have ended it "successfully".
    client = TestClient(TestServer(make_app(redis_url)))
    await client.start_server()
    try:
        r = await client.post("/getBalance", json={"clientKey": KEY})
        assert (await r.json())["errorId"] == 0
    finally:
        closing = asyncio.ensure_future(client.close())
        done, _ = await asyncio.wait({closing}, timeout=30)
    assert done == {closing}, "the app did not shut down"
    await closing
