"""2captcha error codes as one exception type, with the numeric ids the v2 JSON API uses.

Handlers raise `CaptchaError(code)` and the protocol layer renders it: `ERROR_X` (plain v1),
`{"status":0,"request":"ERROR_X"}` (v1 JSON) or `{"errorId":N,"errorCode":"ERROR_X"}` (v2).
"""

from __future__ import annotations

# v1 code -> (v2 errorId, v2 errorCode, description). The v2 API names some conditions
# differently (a malformed key is simply "does not exist", an unknown id is NO_SUCH_CAPCHA_ID).
_CODES: dict[str, tuple[int, str, str]] = {
    "ERROR_WRONG_USER_KEY": (1, "ERROR_KEY_DOES_NOT_EXIST", "key has a wrong format"),
    "ERROR_KEY_DOES_NOT_EXIST": (1, "ERROR_KEY_DOES_NOT_EXIST", "key does not exist"),
    "ERROR_NO_SLOT_AVAILABLE": (2, "ERROR_NO_SLOT_AVAILABLE", "queue is full, retry later"),
    "ERROR_ZERO_CAPTCHA_FILESIZE": (3, "ERROR_ZERO_CAPTCHA_FILESIZE", "image under 100 bytes"),
    "ERROR_TOO_BIG_CAPTCHA_FILESIZE": (
        4,
        "ERROR_TOO_BIG_CAPTCHA_FILESIZE",
        "image over the size or pixel limit",
    ),
    "ERROR_CAPTCHA_UNSOLVABLE": (12, "ERROR_CAPTCHA_UNSOLVABLE", "no engine could read it"),
    "ERROR_NO_SUCH_METHOD": (14, "ERROR_NO_SUCH_METHOD", "no such method"),
    "ERROR_WRONG_FILE_EXTENSION": (
        15,
        "ERROR_IMAGE_TYPE_NOT_SUPPORTED",
        "file extension is not jpg, jpeg, gif or png",
    ),
    "ERROR_IMAGE_TYPE_NOT_SUPPORTED": (
        15,
        "ERROR_IMAGE_TYPE_NOT_SUPPORTED",
        "image type not recognised",
    ),
    "ERROR_UPLOAD": (15, "ERROR_IMAGE_TYPE_NOT_SUPPORTED", "no image data in the request"),
    "ERROR_WRONG_ID_FORMAT": (16, "ERROR_NO_SUCH_CAPCHA_ID", "id must be digits only"),
    "ERROR_WRONG_CAPTCHA_ID": (16, "ERROR_NO_SUCH_CAPCHA_ID", "no such captcha id"),
    "ERROR_TASK_ABSENT": (22, "ERROR_TASK_ABSENT", "task is missing"),
    "ERROR_TASK_NOT_SUPPORTED": (23, "ERROR_TASK_NOT_SUPPORTED", "task type not supported"),
    "ERROR_BAD_PARAMETERS": (110, "ERROR_BAD_PARAMETERS", "missing or malformed parameters"),
    "ERROR_EMPTY_ACTION": (14, "ERROR_NO_SUCH_METHOD", "action is missing or unknown"),
    "ERROR_DUPLICATE_REPORT": (16, "ERROR_NO_SUCH_CAPCHA_ID", "already reported"),
    "REPORT_NOT_RECORDED": (16, "ERROR_NO_SUCH_CAPCHA_ID", "task is not finished"),
    "MAX_USER_TURN": (2, "ERROR_NO_SLOT_AVAILABLE", "rate limit exceeded for this key"),
}


class CaptchaError(Exception):
    """A 2captcha protocol error; `code` is the v1 name (e.g. ``ERROR_WRONG_USER_KEY``)."""

    def __init__(self, code: str, detail: str | None = None) -> None:
        if code not in _CODES:
            raise ValueError(f"unknown 2captcha error code {code!r}")
        self.code = code
        self.detail = detail or _CODES[code][2]
        super().__init__(f"{code}: {self.detail}")

    @property
    def v2_id(self) -> int:
        return _CODES[self.code][0]

    @property
    def v2_code(self) -> str:
        return _CODES[self.code][1]
