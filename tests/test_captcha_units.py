"""Fast checks of the server's parts that need no running server."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from captcha_server.config import Limits, ServerConfig, load_keys
from captcha_server.errors import CaptchaError
from captcha_server.options import TaskOptions
from captcha_server.security import KeyRing, RateLimiter
from captcha_server.upload import check_extension, decode_base64, validate_image
from cumpair.vision.ocr_types import CharacterSet
from tests.captcha_fixtures import ADMIN_KEY, KEY, ROOT, b64, bomb_png, text_png


def code_of(fn, *args) -> str:
    with pytest.raises(CaptchaError) as info:
        fn(*args)
    return info.value.code


def test_v1_fields_map_onto_ocr_options():
    opts = TaskOptions.from_v1(
        {"numeric": "1", "min_len": "4", "max_len": "6", "phrase": "0", "lang": "en"}
    )
    ocr = opts.to_ocr_options()
    assert ocr.charset is CharacterSet.DIGITS and ocr.whitelist == "0123456789"
    assert (ocr.min_len, ocr.max_len, ocr.phrase, ocr.language) == (4, 6, False, "eng")


def test_client_library_camel_case_names_are_accepted():
    opts = TaskOptions.from_v1({"minLen": "3", "maxLen": "5", "caseSensitive": "1"})
    assert (opts.min_len, opts.max_len, opts.regsense) == (3, 5, True)


def test_v2_task_fields_map_like_v1():
    task = {"phrase": True, "case": True, "numeric": 4, "math": False, "minLength": 2}
    assert TaskOptions.from_v2(task, "en") == TaskOptions(
        numeric=4, min_len=2, phrase=True, regsense=True
    )


def test_calc_reads_the_expression_and_checks_a_number_comes_back():
    opts = TaskOptions(calc=True, min_len=3)
    assert opts.to_ocr_options().calc and opts.to_ocr_options().min_len == 0
    assert opts.check_answer("19") and not opts.check_answer("12+7")


@pytest.mark.parametrize(
    ("numeric", "text", "ok"),
    [(1, "4072", True), (1, "40A2", False), (2, "ABCD", True), (3, "AB12", False),
     (3, "1234", True), (4, "AB12", True), (4, "ABCD", False), (0, "", False)],
)  # fmt: skip
def test_answers_that_break_the_character_set_are_rejected(numeric, text, ok):
    assert TaskOptions(numeric=numeric).check_answer(text) is ok


def test_length_limits_are_enforced_on_answers():
    opts = TaskOptions(min_len=4, max_len=5)
    assert [opts.check_answer(t) for t in ("ABC", "ABCD", "ABCDEF")] == [False, True, False]


@pytest.mark.parametrize(
    "fields",
    [{"numeric": "7"}, {"min_len": "30"}, {"min_len": "6", "max_len": "4"}, {"numeric": "x"},
     {"lang": "ru"}, {"language": "1"}, {"textinstructions": "x" * 141}],
)  # fmt: skip
def test_options_the_server_cannot_honour_are_bad_parameters(fields):
    assert code_of(TaskOptions.from_v1, fields) == "ERROR_BAD_PARAMETERS"


def test_base64_decoding_tolerates_data_urls_and_line_breaks():
    png = text_png("AB")
    wrapped = "data:image/png;base64," + "\n".join(b64(png)[i : i + 60] for i in range(0, 999, 60))
    assert decode_base64(wrapped)[:100] == png[:100]
    assert code_of(decode_base64, "%%%") == "ERROR_UPLOAD"
    assert code_of(decode_base64, "  ") == "ERROR_ZERO_CAPTCHA_FILESIZE"


def test_image_validation_gives_the_documented_codes():
    png = text_png("AB")
    assert validate_image(png, Limits()) == png
    assert code_of(validate_image, png[:50], Limits()) == "ERROR_ZERO_CAPTCHA_FILESIZE"
    assert code_of(validate_image, png, Limits(max_bytes=200)) == "ERROR_TOO_BIG_CAPTCHA_FILESIZE"
    assert code_of(validate_image, png, Limits(max_pixels=100)) == "ERROR_TOO_BIG_CAPTCHA_FILESIZE"
    assert code_of(validate_image, b"GIF89a" + b"\0" * 200, Limits()).startswith("ERROR_IMAGE")
    assert (
        code_of(validate_image, png[: len(png) - 300], Limits()) == "ERROR_IMAGE_TYPE_NOT_SUPPORTED"
    )
    assert code_of(check_extension, "x.exe") == "ERROR_WRONG_FILE_EXTENSION"
    check_extension("captcha.JPEG")


@pytest.mark.parametrize(
    "size", [(30000, 30000), (10000, 10000)], ids=["over Pillow's error", "over Pillow's warning"]
)
def test_decompression_bombs_are_too_big_and_never_decoded(size):
    bomb = bomb_png(*size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert code_of(validate_image, bomb, Limits()) == "ERROR_TOO_BIG_CAPTCHA_FILESIZE"
    assert not caught  # Pillow's DecompressionBombWarning is answered, not logged


def test_admin_keys_are_recognised_only_as_admin_keys():
    ring = KeyRing(frozenset({KEY}), admin_keys=frozenset({ADMIN_KEY}))
    assert ring.is_admin(ADMIN_KEY) and ring.is_admin(f" {ADMIN_KEY}\n")
    assert not ring.is_admin(KEY) and not ring.is_admin(None) and not ring.is_admin("")
    assert code_of(ring.check, ADMIN_KEY) == "ERROR_KEY_DOES_NOT_EXIST"


def test_upload_limits_and_admin_keys_are_validated():
    with pytest.raises(ValueError, match="body-timeout"):
        Limits(body_timeout_s=0)
    with pytest.raises(ValueError, match="max-uploads"):
        Limits(max_uploads=0)
    with pytest.raises(ValueError, match="32 letters"):
        ServerConfig(api_keys=frozenset({KEY}), admin_keys=frozenset({"admin"}))


def test_keys_are_checked_for_format_then_existence():
    ring = KeyRing(frozenset({KEY}))
    assert ring.check(f" {KEY} ") == KEY
    assert code_of(ring.check, "short") == "ERROR_WRONG_USER_KEY"
    assert code_of(ring.check, None) == "ERROR_WRONG_USER_KEY"
    assert code_of(ring.check, "Z" * 32) == "ERROR_KEY_DOES_NOT_EXIST"
    assert KeyRing(frozenset(), no_auth=True).check(None) == "anonymous"


def test_rate_limit_allows_a_burst_then_refuses():
    limiter = RateLimiter(rate=0.001, burst=3)
    assert [limiter.allow("k") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("other")


def test_keys_come_from_env_and_file(tmp_path, monkeypatch):
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# operator keys\n{'F' * 32}\n\n")
    assert load_keys(f"{KEY}, ", keys_file) == {KEY, "F" * 32}
    monkeypatch.setenv("CAPTCHA_ADMIN_KEYS", ADMIN_KEY)
    assert load_keys(variable="CAPTCHA_ADMIN_KEYS") == {ADMIN_KEY}


def test_config_refuses_no_keys_without_no_auth_and_malformed_keys():
    with pytest.raises(ValueError, match="no API key"):
        ServerConfig()
    with pytest.raises(ValueError, match="32 letters"):
        ServerConfig(api_keys=frozenset({"short"}))
    assert ServerConfig(no_auth=True).no_auth


def test_cli_refuses_to_start_without_a_key():
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "captcha_server", "--port", "1"],
        capture_output=True, text=True, env=env, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode != 0 and "no API key configured" in proc.stderr


def test_every_error_code_has_a_v2_id():
    err = CaptchaError("ERROR_WRONG_CAPTCHA_ID")
    assert (err.v2_id, err.v2_code) == (16, "ERROR_NO_SUCH_CAPCHA_ID")
    with pytest.raises(ValueError):
        CaptchaError("ERROR_MADE_UP")
