"""Every 2captcha call and error code over real HTTP, against the in-process pool and against
Redis + two worker processes (same tests, both backends)."""

from __future__ import annotations

import io
import time
from unittest.mock import ANY

import pytest
from PIL import Image

from tests.captcha_fixtures import (
    ADMIN_KEY,
    KEY,
    OTHER_KEY,
    b64,
    captcha_server,
    solve_v1,
    text_png,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PNG = text_png("7KX4P")


@pytest.fixture(scope="module", params=["local", "redis"])
def server(request, tmp_path_factory):
    with captcha_server(tmp_path_factory.mktemp(request.param), backend=request.param) as srv:
        yield srv


def v1(server, **fields):
    files = fields.pop("files", None)
    return server.post("/in.php", data={"key": KEY, **fields}, files=files)


def res(server, **params):
    return server.get("/res.php", params={"key": KEY, **params})


def wait_final(server, task_id: str, key: str = KEY) -> str:
    for _ in range(600):
        answer = server.get("/res.php", params={"key": key, "action": "get", "id": task_id}).text
        if answer != "CAPCHA_NOT_READY":
            return answer
        time.sleep(0.1)
    raise AssertionError("not solved")


# -- v1: submitting ------------------------------------------------------------------------


def test_in_php_multipart_returns_id_and_res_php_returns_text(server):
    r = v1(server, method="post", files={"file": ("captcha.png", PNG, "image/png")})
    assert r.status_code == 200 and r.text.startswith("OK|")
    task_id = r.text[3:]
    assert task_id.isdigit()
    assert wait_final(server, task_id) == "OK|7KX4P"


def test_in_php_base64_json_mode_and_res_php_json(server):
    r = v1(server, method="base64", body=b64(PNG), json="1")
    data = r.json()
    assert data["status"] == 1 and data["request"].isdigit()
    wait_final(server, data["request"])
    got = res(server, action="get", id=data["request"], json="1").json()
    assert got == {"status": 1, "request": "7KX4P"}


def test_res_php_answers_capcha_not_ready_while_pending(server):
    # An impossible min_len makes the chain try every engine and variant (hundreds of ms each);
    # the last of three such tasks is certainly still queued when asked at once.
    slow = {"method": "base64", "body": b64(PNG), "min_len": "20"}
    ids = [v1(server, **slow).text[3:] for _ in range(3)]
    assert res(server, action="get", id=ids[-1]).text == "CAPCHA_NOT_READY"
    assert res(server, action="get", id=ids[-1], json="1").json() == {
        "status": 0,
        "request": "CAPCHA_NOT_READY",
    }
    for i in ids:
        assert wait_final(server, i) == "ERROR_CAPTCHA_UNSOLVABLE"


def test_numeric_option_restricts_answer_to_digits(server):
    assert solve_v1(server, text_png("40721"), numeric="1") == "OK|40721"


def test_calc_option_answers_the_arithmetic_result(server):
    assert solve_v1(server, text_png("12 + 7"), calc="1") == "OK|19"


def test_min_len_that_cannot_be_met_ends_unsolvable(server):
    assert solve_v1(server, PNG, min_len="9") == "ERROR_CAPTCHA_UNSOLVABLE"


def test_res_php_ids_answers_several_tasks_at_once(server):
    a = v1(server, method="base64", body=b64(PNG)).text[3:]
    b = v1(server, method="base64", body=b64(text_png("40721")), numeric="1").text[3:]
    wait_final(server, a)
    wait_final(server, b)
    assert (
        res(server, action="get", ids=f"{a},{b},123").text == "7KX4P|40721|ERROR_WRONG_CAPTCHA_ID"
    )
    assert res(server, action="get", ids=f"{a},{b}", json="1").json() == {
        "status": 1,
        "request": "7KX4P|40721",
    }


def test_report_good_then_duplicate_report_is_refused(server):
    task_id = v1(server, method="base64", body=b64(PNG)).text[3:]
    wait_final(server, task_id)
    assert res(server, action="reportgood", id=task_id).text == "OK_REPORT_RECORDED"
    assert res(server, action="reportbad", id=task_id).text == "ERROR_DUPLICATE_REPORT"
    stats = server.get("/stats", params={"key": KEY}).json()
    assert stats["reported_good"] >= 1


def test_reportbad_json_mode(server):
    task_id = v1(server, method="base64", body=b64(PNG)).text[3:]
    wait_final(server, task_id)
    assert res(server, action="reportbad", id=task_id, json="1").json() == {
        "status": 1,
        "request": "OK_REPORT_RECORDED",
    }


def test_getbalance_plain_and_json(server):
    assert float(res(server, action="getbalance").text) > 0
    assert res(server, action="getbalance", json="1").json()["status"] == 1


# -- v1: every documented error, plain and JSON -----------------------------------------


def _png_truncated() -> bytes:
    return PNG[: len(PNG) // 2]


def _oversize_png() -> bytes:
    rng = __import__("numpy").random.default_rng(0)
    arr = rng.integers(0, 255, (300, 300, 3), dtype="uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    assert len(buf.getvalue()) > 100 * 1024
    return buf.getvalue()


IN_PHP_ERRORS = [
    (
        "wrong key format",
        {"key": "short", "method": "base64", "body": b64(PNG)},
        "ERROR_WRONG_USER_KEY",
    ),
    ("missing key", {"key": "", "method": "base64", "body": b64(PNG)}, "ERROR_WRONG_USER_KEY"),
    (
        "unknown key",
        {"key": "C" * 32, "method": "base64", "body": b64(PNG)},
        "ERROR_KEY_DOES_NOT_EXIST",
    ),
    ("empty body", {"method": "base64", "body": ""}, "ERROR_ZERO_CAPTCHA_FILESIZE"),
    (
        "tiny image",
        {"method": "base64", "body": b64(b"\x89PNG\r\n\x1a\n")},
        "ERROR_ZERO_CAPTCHA_FILESIZE",
    ),
    ("bad base64", {"method": "base64", "body": "@@not*base64!!" * 20}, "ERROR_UPLOAD"),
    (
        "not an image",
        {"method": "base64", "body": b64(b"hello world " * 40)},
        "ERROR_IMAGE_TYPE_NOT_SUPPORTED",
    ),
    (
        "truncated png",
        {"method": "base64", "body": b64(_png_truncated())},
        "ERROR_IMAGE_TYPE_NOT_SUPPORTED",
    ),
    (
        "oversize file",
        {"method": "base64", "body": b64(_oversize_png())},
        "ERROR_TOO_BIG_CAPTCHA_FILESIZE",
    ),
    ("no file part", {"method": "post"}, "ERROR_UPLOAD"),
    ("other captcha type", {"method": "userrecaptcha", "googlekey": "x"}, "ERROR_BAD_PARAMETERS"),
    ("bad numeric", {"method": "base64", "body": b64(PNG), "numeric": "9"}, "ERROR_BAD_PARAMETERS"),
]


@pytest.mark.parametrize(
    ("case", "fields", "code"), IN_PHP_ERRORS, ids=[c[0] for c in IN_PHP_ERRORS]
)
def test_in_php_errors_plain_and_json(server, case, fields, code):
    data = {"key": KEY, **fields}
    assert server.post("/in.php", data=data).text == code
    got = server.post("/in.php", data={**data, "json": "1"}).json()
    assert got["status"] == 0 and got["request"] == code


def test_in_php_wrong_file_extension(server):
    files = {"file": ("captcha.txt", PNG, "text/plain")}
    assert v1(server, method="post", files=files).text == "ERROR_WRONG_FILE_EXTENSION"
    got = v1(server, method="post", files=files, json="1").json()
    assert got == {
        "status": 0,
        "request": "ERROR_WRONG_FILE_EXTENSION",
        "error_text": got["error_text"],
    }


def test_in_php_oversize_multipart_upload(server):
    files = {"file": ("big.png", _oversize_png(), "image/png")}
    assert v1(server, method="post", files=files).text == "ERROR_TOO_BIG_CAPTCHA_FILESIZE"


RES_PHP_ERRORS = [
    ("missing action", {}, "ERROR_EMPTY_ACTION"),
    ("unknown action", {"action": "frobnicate"}, "ERROR_EMPTY_ACTION"),
    ("malformed id", {"action": "get", "id": "12ab"}, "ERROR_WRONG_ID_FORMAT"),
    ("missing id", {"action": "get"}, "ERROR_WRONG_ID_FORMAT"),
    ("unknown id", {"action": "get", "id": "123456789"}, "ERROR_WRONG_CAPTCHA_ID"),
    ("report unknown id", {"action": "reportbad", "id": "123456789"}, "ERROR_WRONG_CAPTCHA_ID"),
    ("wrong key", {"key": "x", "action": "getbalance"}, "ERROR_WRONG_USER_KEY"),
    ("unknown key", {"key": "D" * 32, "action": "getbalance"}, "ERROR_KEY_DOES_NOT_EXIST"),
]


@pytest.mark.parametrize(
    ("case", "params", "code"), RES_PHP_ERRORS, ids=[c[0] for c in RES_PHP_ERRORS]
)
def test_res_php_errors_plain_and_json(server, case, params, code):
    assert res(server, **params).text == code
    got = res(server, **params, json="1").json()
    assert got["status"] == 0 and got["request"] == code


def test_task_of_another_key_is_not_visible(server):
    task_id = v1(server, method="base64", body=b64(PNG)).text[3:]
    answer = server.get("/res.php", params={"key": OTHER_KEY, "action": "get", "id": task_id})
    assert answer.text == "ERROR_WRONG_CAPTCHA_ID"
    wait_final(server, task_id)


# -- v2 JSON ---------------------------------------------------------------------------------


def v2(server, path, **payload):
    return server.post(path, json={"clientKey": KEY, **payload}).json()


def test_create_task_and_get_task_result(server):
    created = v2(server, "/createTask", task={"type": "ImageToTextTask", "body": b64(PNG)})
    assert created["errorId"] == 0 and isinstance(created["taskId"], int)
    for _ in range(600):
        result = v2(server, "/getTaskResult", taskId=created["taskId"])
        if result.get("status") != "processing":
            break
        time.sleep(0.1)
    assert result["errorId"] == 0 and result["status"] == "ready"
    assert result["solution"] == {"text": "7KX4P"}
    assert v2(server, "/reportCorrect", taskId=created["taskId"]) == {
        "errorId": 0,
        "status": "success",
    }


def test_get_balance_v2(server):
    assert v2(server, "/getBalance")["errorId"] == 0


def test_get_task_result_reports_processing_then_unsolvable(server):
    task = {"type": "ImageToTextTask", "body": b64(PNG), "minLength": 15}
    created = v2(server, "/createTask", task=task)
    first = v2(server, "/getTaskResult", taskId=created["taskId"])
    assert first in ({"errorId": 0, "status": "processing"},) or first["errorId"] == 12
    for _ in range(600):
        result = v2(server, "/getTaskResult", taskId=created["taskId"])
        if result.get("status") != "processing":
            break
        time.sleep(0.1)
    assert result["errorId"] == 12 and result["errorCode"] == "ERROR_CAPTCHA_UNSOLVABLE"


def _image_task(body: str) -> dict:
    return {"type": "ImageToTextTask", "body": body}


RECAPTCHA = {"type": "RecaptchaV2TaskProxyless", "websiteURL": "https://x", "websiteKey": "k"}
V2_ERRORS = [
    ("unknown key", "/createTask", {"clientKey": "E" * 32, "task": _image_task(b64(PNG))},
     1, "ERROR_KEY_DOES_NOT_EXIST"),
    ("task absent", "/createTask", {"clientKey": KEY}, 22, "ERROR_TASK_ABSENT"),
    ("other task type", "/createTask", {"clientKey": KEY, "task": RECAPTCHA},
     23, "ERROR_TASK_NOT_SUPPORTED"),
    ("empty body", "/createTask", {"clientKey": KEY, "task": _image_task("")},
     3, "ERROR_ZERO_CAPTCHA_FILESIZE"),
    ("oversize", "/createTask", {"clientKey": KEY, "task": _image_task(b64(_oversize_png()))},
     4, "ERROR_TOO_BIG_CAPTCHA_FILESIZE"),
    ("not an image", "/createTask", {"clientKey": KEY, "task": _image_task(b64(b"x" * 500))},
     15, "ERROR_IMAGE_TYPE_NOT_SUPPORTED"),
    ("unknown id", "/getTaskResult", {"clientKey": KEY, "taskId": 123456789},
     16, "ERROR_NO_SUCH_CAPCHA_ID"),
    ("malformed id", "/getTaskResult", {"clientKey": KEY, "taskId": "abc"},
     16, "ERROR_NO_SUCH_CAPCHA_ID"),
    ("bad key balance", "/getBalance", {"clientKey": ""}, 1, "ERROR_KEY_DOES_NOT_EXIST"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "path", "payload", "error_id", "code"), V2_ERRORS, ids=[c[0] for c in V2_ERRORS]
)
def test_v2_errors(server, case, path, payload, error_id, code):
    got = server.post(path, json=payload).json()
    assert (got["errorId"], got["errorCode"]) == (error_id, code)


def test_v2_non_json_body_is_bad_parameters(server):
    got = server.post(
        "/createTask", data=b"{not json", headers={"Content-Type": "application/json"}
    ).json()
    assert got["errorCode"] == "ERROR_BAD_PARAMETERS"


# -- native API, health and stats -------------------------------------------------------------


def test_native_sync_ocr_returns_text_engine_and_boxes(server):
    r = server.post(
        "/v1/ocr", data=PNG, headers={"Authorization": f"Bearer {KEY}", "Content-Type": "image/png"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == "7KX4P" and body["engine"] and 0 < body["confidence"] <= 1
    assert body["boxes"] and len(body["boxes"][0]["box"]) == 4


def test_native_async_job_and_specs(server):
    label = text_png("230 V 1200 W", size=(440, 80))
    r = server.post(
        "/v1/ocr",
        params={"async": "1", "specs": "1", "phrase": "1"},
        files={"file": ("label.png", label, "image/png")},
        headers={"X-API-Key": KEY},
    )
    assert r.status_code == 202
    job_id = r.json()["id"]
    for _ in range(600):
        job = server.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": KEY}).json()
        if job["state"] in ("done", "unsolvable"):
            break
        time.sleep(0.1)
    assert job["state"] == "done", job
    assert job["text"] == "230 V 1200 W" and job["boxes"]
    assert (job["specs"]["voltage_v"], job["specs"]["power_w"]) == (230, 1200)


def test_native_sync_call_that_times_out_answers_504_with_a_job_to_poll(server):
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "image/png"}
    r = server.post("/v1/ocr", params={"timeout": "0", "min_len": "20"}, data=PNG, headers=auth)
    assert r.status_code == 504 and r.json()["state"] == "pending"
    for _ in range(600):
        job = server.get(f"/v1/jobs/{r.json()['id']}", headers=auth).json()
        if job["state"] not in ("pending", "processing"):
            break
        time.sleep(0.1)
    assert job == {"id": r.json()["id"], "state": "unsolvable", "error": "ERROR_CAPTCHA_UNSOLVABLE"}


def test_native_errors_use_http_status(server):
    auth = {"Authorization": f"Bearer {KEY}"}
    assert (
        server.post("/v1/ocr", data=PNG, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    assert server.post("/v1/ocr", data=b"", headers=auth).status_code == 400
    assert server.post("/v1/ocr", data=b"x" * 400, headers=auth).status_code == 415
    assert server.get("/v1/jobs/42", headers=auth).status_code == 404
    assert server.get("/v1/jobs/abc", headers=auth).status_code == 404


def test_health_reports_queue_engines_and_workers(server):
    health = server.get("/health").json()
    assert health["ok"] and health["queue_reachable"] and health["engines_loaded"]
    assert health["workers_alive"] >= 1


def test_admin_stats_count_tasks_and_latency_per_engine(server):
    solve_v1(server, PNG)
    stats = server.get("/stats", params={"key": ADMIN_KEY}).json()
    assert stats["scope"] == "server" and stats["submitted"] >= stats["solved"] >= 1
    assert stats["unsolvable"] >= 0 and "queue_depth" in stats and stats["uptime_s"] >= 0
    _engine, lat = next(iter(stats["latency"].items()))
    assert lat["count"] >= 1 and lat["p50_ms"] > 0
    assert stats["uploads"]["timed_out"] == 0 and stats["uploads"]["in_flight"] == 0
    assert server.get("/stats").status_code == 401


def _own_stats(server, key: str) -> dict:
    return server.get("/stats", params={"key": key}).json()


def test_a_key_sees_the_counters_of_its_own_tasks_only(server):
    before, other_before = _own_stats(server, KEY), _own_stats(server, OTHER_KEY)
    task_id = v1(server, method="base64", body=b64(PNG)).text[3:]
    assert wait_final(server, task_id) == "OK|7KX4P"
    assert res(server, action="reportgood", id=task_id).text == "OK_REPORT_RECORDED"
    after = _own_stats(server, KEY)
    assert after["scope"] == "key" and "latency" not in after and "queue_depth" not in after
    assert [after[c] - before[c] for c in ("submitted", "solved", "reported_good")] == [1, 1, 1]
    assert _own_stats(server, OTHER_KEY) == {**other_before, "uptime_s": ANY}
