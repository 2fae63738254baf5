"""`cumpair specs` on the command line: --text, several images, bad files."""

from __future__ import annotations

import json

from PIL import Image, ImageDraw, ImageFont

from cumpair.cli import main

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def test_text_prints_the_contract_json(capsys):
    assert main(["specs", "--text", "Weight: 2.5 kg, 100% Cotton, Color: Black"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["weight_g"] == 2500
    assert printed["materials"] == [{"name": "cotton", "percent": 100}]
    assert printed["colors"] == ["black"]
    assert "dominant_colors" not in printed


def test_several_images_print_a_list_and_a_bad_one_reports_its_error(tmp_path, capsys):
    label = Image.new("RGB", (420, 90), "white")
    ImageDraw.Draw(label).text((16, 24), "Power: 1200 W", font=ImageFont.truetype(FONT, 30),
                               fill="black")  # fmt: skip
    good = tmp_path / "label.png"
    label.save(good)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    code = main(["specs", str(good), str(bad), "--engines", "tesseract", "--ocr"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 1
    assert printed[0]["path"] == str(good) and printed[0]["power_w"] == 1200
    assert printed[0]["ocr"]["engine"] == "tesseract"
    assert printed[1]["path"] == str(bad) and "TruncatedImageError" in printed[1]["error"]


def test_text_and_paths_together_is_a_usage_error(tmp_path, capsys):
    assert main(["specs", "--text", "x", str(tmp_path / "a.png")]) == 2
    assert "either --text" in capsys.readouterr().err
