"""The OCR fallback chain with real engines on rendered text and the demo shop's captchas."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from cumpair.demo.captcha import captcha_answer, render_captcha
from cumpair.vision import engines
from cumpair.vision.images import NotAnImageError
from cumpair.vision.ocr import OcrUnavailableError, evaluate_expression, recognize
from cumpair.vision.ocr_types import CharacterSet, OcrOptions

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
TESSERACT = OcrOptions(engines=("tesseract",))


def render(text: str, size: tuple[int, int] = (520, 120), font_size: int = 28) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).multiline_text(
        (16, 16), text, font=ImageFont.truetype(str(FONT), font_size), fill="black", spacing=10
    )
    return image


def test_importing_ocr_loads_no_engine():
    code = (
        "import sys, cumpair.vision.ocr, cumpair.vision.image_specs\n"
        "heavy = {'tesserocr', 'rapidocr', 'onnxruntime', 'easyocr', 'torch'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_tesseract_reads_rendered_label_text_with_words_and_boxes():
    result = recognize(render("Weight: 2.5 kg\nModel: ABC-123"), TESSERACT)
    assert result.text == "Weight: 2.5 kg\nModel: ABC-123"
    assert result.engine == "tesseract" and result.variant
    assert 0.8 <= result.confidence <= 1.0
    weight = next(w for w in result.words if w.text == "Weight:")
    xs = [p[0] for p in weight.box]
    ys = [p[1] for p in weight.box]
    assert min(xs) < 40 and min(ys) < 40 and max(xs) < 200  # boxes in original pixels


def test_skewed_image_is_deskewed_and_boxes_map_back_to_the_original():
    tilted = render("Voltage: 230 V\nPower: 1200 W", size=(520, 160)).rotate(
        6, expand=True, fillcolor="white"
    )
    result = recognize(tilted, TESSERACT)
    assert "deskew" in result.variant
    assert result.text == "Voltage: 230 V\nPower: 1200 W"
    for word in result.words:
        assert all(0 <= x <= tilted.width and 0 <= y <= tilted.height for x, y in word.box)


def test_demo_captchas_are_read_by_the_default_chain():
    tokens = [f"{i:016x}" for i in range(12)]
    solved = sum(
        recognize(render_captcha(token)).text.replace(" ", "").upper() == captcha_answer(token)
        for token in tokens
    )
    assert solved >= 11


def test_digits_only_whitelist_reads_digits():
    result = recognize(render("4821", size=(200, 70), font_size=40),
                       OcrOptions(charset=CharacterSet.DIGITS, engines=("tesseract",)))  # fmt: skip
    assert result.text == "4821"


def test_calc_answers_the_arithmetic_result():
    image = render("12 + 7 =", size=(220, 70), font_size=36)
    assert recognize(image, OcrOptions(calc=True)).text == "19"


def test_case_insensitive_answer_is_lower_cased_and_phrase_false_drops_spaces():
    image = render("Hello World", size=(300, 70), font_size=36)
    options = OcrOptions(case_sensitive=False, phrase=False, engines=("tesseract",))
    assert recognize(image, options).text == "helloworld"


def test_answer_longer_than_max_len_falls_through_to_an_empty_result():
    image = render("ABCDEFGH", size=(300, 70), font_size=36)
    result = recognize(image, OcrOptions(max_len=4, engines=("tesseract",)))
    assert result.text == "" and result.confidence == 0.0
    assert len(result.attempts) == OcrOptions().max_variants


def test_low_confidence_falls_through_to_the_next_engine():
    image = render("Brand: Acme", size=(300, 70), font_size=30)
    # No reading reaches confidence 1.0, so every engine is tried and the best one is kept.
    result = recognize(image, OcrOptions(engines=("tesseract", "rapidocr"), min_confidence=1.0))
    tried = {engine for engine, _, _ in result.attempts}
    assert tried == {"tesseract", "rapidocr"}
    assert result.text == "Brand: Acme"
    assert result.confidence == max(conf for _, _, conf in result.attempts)


def test_blank_image_gives_empty_text_not_an_error():
    result = recognize(Image.new("RGB", (200, 100), "white"), TESSERACT)
    assert result.text == "" and result.confidence == 0.0


def test_bad_bytes_raise_image_error():
    with pytest.raises(NotAnImageError):
        recognize(b"definitely not a png")


def test_unknown_engine_and_language_are_value_errors():
    image = render("x")
    with pytest.raises(ValueError, match="unknown OCR engine"):
        recognize(image, OcrOptions(engines=("abbyy",)))
    with pytest.raises(ValueError, match="language"):
        recognize(image, OcrOptions(language="klingon"))


def test_unavailable_engines_are_skipped_and_all_unavailable_raises(monkeypatch):
    broken = engines.EngineUnavailableError("not installed here")
    monkeypatch.setitem(engines._failures, "easyocr", broken)
    monkeypatch.delitem(engines._engines, "easyocr", raising=False)
    with pytest.raises(OcrUnavailableError):
        recognize(render("Acme"), OcrOptions(engines=("easyocr",)))
    result = recognize(render("Acme"), OcrOptions(engines=("easyocr", "tesseract")))
    assert result.engine == "tesseract" and result.text == "Acme"


def test_options_reject_contradictions():
    with pytest.raises(ValueError):
        OcrOptions(min_len=5, max_len=3)
    with pytest.raises(ValueError):
        OcrOptions(min_confidence=1.5)
    assert OcrOptions(charset=1).charset is CharacterSet.DIGITS  # type: ignore[arg-type]


def test_engines_load_once_even_when_threads_race():
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(id(engines.get_engine("tesseract"))))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1


def test_concurrent_recognition_gives_each_thread_its_own_answer():
    texts = ["Weight: 1 kg", "Power: 20 W", "Model: XK-9", "Voltage: 12 V"]
    answers: dict[str, str] = {}

    def work(text: str) -> None:
        answers[text] = recognize(render(text, size=(360, 70)), TESSERACT).text

    threads = [threading.Thread(target=work, args=(t,)) for t in texts * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {t: t for t in texts}


@pytest.mark.parametrize(
    ("expression", "value"),
    [("12 + 7 =", "19"), ("3 x 4 = ?", "12"), ("(2+3)*4", "20"), ("7/2", "3.5"), ("9 - 12", "-3")],
)
def test_expressions_are_evaluated_exactly(expression, value):
    assert evaluate_expression(expression) == value


@pytest.mark.parametrize("bad", ["", "2 ** 999999", "__import__('os')", "1/0", "12 + ", "9" * 80])
def test_malicious_or_broken_expressions_give_none(bad):
    assert evaluate_expression(bad) is None


@pytest.mark.slow
def test_easyocr_reads_text_with_downloads_disabled():
    result = recognize(render("Capacity: 750 ml"), OcrOptions(engines=("easyocr",)))
    assert result.engine == "easyocr"
    assert result.text.replace(" ", "").lower() == "capacity:750ml"
