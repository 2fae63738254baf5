"""2captcha image options (v1 form fields, v2 task fields) -> one `TaskOptions` record.

`TaskOptions.to_ocr_options()` expresses them through `cumpair.vision.ocr_types.OcrOptions`;
`check_answer()` re-applies the hard constraints to whatever the chain returned, so an answer
that breaks `numeric`/`min_len`/`max_len` is reported unsolvable rather than sent back wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from captcha_server.errors import CaptchaError
from captcha_server.fields import flag, integer, text
from cumpair.vision.ocr_types import CharacterSet, OcrOptions

# 2captcha `lang` codes we can read (Tesseract language data installed here: eng) and the
# v1 `language` switch: 0 any, 1 Cyrillic, 2 Latin. Cyrillic has no engine data here.
_LANGS = {"en": "eng", "eng": "eng"}


@dataclass(frozen=True, slots=True)
class TaskOptions:
    numeric: int = 0
    min_len: int = 0
    max_len: int = 0
    phrase: bool = False
    regsense: bool = False
    calc: bool = False
    language: str = "eng"
    instructions: str = ""
    engines: tuple[str, ...] | None = None
    """Engine order chosen by the server operator (`--engines`); None = the library default."""

    def __post_init__(self) -> None:
        if self.engines is not None:
            object.__setattr__(self, "engines", tuple(self.engines))
        if self.numeric not in range(5):
            raise CaptchaError("ERROR_BAD_PARAMETERS", "numeric must be 0..4")
        if not (0 <= self.min_len <= 20 and 0 <= self.max_len <= 20):
            raise CaptchaError("ERROR_BAD_PARAMETERS", "min_len/max_len must be 0..20")
        if self.max_len and self.min_len > self.max_len:
            raise CaptchaError("ERROR_BAD_PARAMETERS", "min_len exceeds max_len")
        if len(self.instructions) > 140:
            raise CaptchaError("ERROR_BAD_PARAMETERS", "textinstructions over 140 characters")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskOptions:
        return cls(**{k: data[k] for k in cls.__slots__ if k in data})

    @classmethod
    def from_v1(cls, form: Mapping[str, Any]) -> TaskOptions:
        """From `in.php` fields: numeric, min_len, max_len, phrase, regsense, calc, language,
        lang, textinstructions (also accepts the client library's camelCase spellings)."""
        return cls(
            numeric=integer(form, "numeric"),
            min_len=integer(form, "min_len", "minLen"),
            max_len=integer(form, "max_len", "maxLen"),
            phrase=bool(integer(form, "phrase")),
            regsense=bool(integer(form, "regsense", "caseSensitive")),
            calc=bool(integer(form, "calc")),
            language=_language(text(form, "lang"), integer(form, "language")),
            instructions=text(form, "textinstructions") or text(form, "hintText") or "",
        )

    @classmethod
    def from_v2(cls, task: Mapping[str, Any], language_pool: str | None = None) -> TaskOptions:
        """From a v2 `ImageToTextTask`: phrase, case, numeric, math, minLength, maxLength,
        comment; `languagePool` ("en", "rn") on the request."""
        return cls(
            numeric=integer(task, "numeric"),
            min_len=integer(task, "minLength"),
            max_len=integer(task, "maxLength"),
            phrase=flag(task, "phrase"),
            regsense=flag(task, "case"),
            calc=flag(task, "math"),
            language=_language(language_pool, 0),
            instructions=text(task, "comment") or "",
        )

    def to_ocr_options(self) -> OcrOptions:
        charset = CharacterSet(self.numeric)
        whitelist = "0123456789" if charset is CharacterSet.DIGITS else None
        if self.calc:
            # The chain reads the expression; digits and operators are all it may contain.
            charset, whitelist = CharacterSet.ANY, "0123456789+-*/x=?() "
        return OcrOptions(
            charset=charset,
            whitelist=whitelist,
            min_len=0 if self.calc else self.min_len,
            max_len=0 if self.calc else self.max_len,
            # regsense=0 means case does not matter, so the engine's own reading is as good as
            # any; lower-casing it would break sites that compare case-sensitively anyway.
            case_sensitive=True,
            phrase=self.phrase,
            calc=self.calc,
            language=self.language,
            engines=self.engines,
        )

    def check_answer(self, text: str) -> bool:
        """True when `text` honours the hard constraints the client set."""
        if not text:
            return False
        if self.calc:
            return text.lstrip("-").isdigit()
        core = text.replace(" ", "")
        if self.min_len and len(core) < self.min_len:
            return False
        if self.max_len and len(core) > self.max_len:
            return False
        has_digit = any(c.isdigit() for c in core)
        has_alpha = any(c.isalpha() for c in core)
        return {
            0: True,
            1: core.isdigit(),
            2: core.isalpha(),
            3: core.isdigit() or core.isalpha(),
            4: has_digit and has_alpha and core.isalnum(),
        }[self.numeric]


def _language(lang: str | None, language: int) -> str:
    if lang:
        code = lang.strip().lower()
        if code not in _LANGS:
            raise CaptchaError("ERROR_BAD_PARAMETERS", f"no OCR language data for lang={code!r}")
        return _LANGS[code]
    if language not in (0, 2):
        raise CaptchaError("ERROR_BAD_PARAMETERS", "only Latin captchas (language=0/2) are read")
    return "eng"
