"""Spec extraction on real product titles: the slips real shops' wording caused, one test each.

Titles quoted here are real offers from the WDC Product Data Corpus gold standard (Primpeli,
Peeters, Bizer, WWW 2019; ../shared/data/real/matching/wdc/) and from the saved shop pages in
../shared/data/real/pages/ (test fixtures of calgo-lab/green-db), quoted as the shops printed them.
"""

from __future__ import annotations

import pytest

from cumpair.vision.specs import extract_specs


@pytest.mark.parametrize(
    "title",
    [
        "DCS 7010L Outdoor Camera | D-Link España",  # a model code, not 7,010 litres
        "DCS-7010L Outdoor Camera | D-Link España",
        "662078-B21 HP Intel Xeon E5-2650L 1.8GHz BL460c G8",
        "Canon EF 17-40mm f/4L USM",  # an aperture and the L lens line
        "Canon EF 70-200mm 2.8L IS II USM",
        "Cámara CANON EOS 6D + Lente EF 24-105L",
        "Canon NB 5L Li-Ion Camera Battery",
    ],
)
def test_model_codes_ending_in_l_are_not_volumes(title):
    assert extract_specs(title).volume_ml is None


def test_a_real_volume_next_to_a_code_is_still_read():
    assert extract_specs("SIGG Traveller Bottle 1.5L").volume_ml == 1500
    assert extract_specs("Rubbermaid 1 gal. MixerMate Pitcher").volume_ml == pytest.approx(3785.4)


@pytest.mark.parametrize(
    ("text", "gb"),
    [
        ("15 mb", 0.015),
        ("SanDisk SDSDJ-32MB BQH 32MB 9p SD Secure Digital Card", 0.032),
        ("Storage: 1.5 MB", 0.0015),
    ],
)
def test_small_storage_keeps_its_precision_instead_of_rounding_to_zero(text, gb):
    assert extract_specs(text).storage_gb == pytest.approx(gb)


@pytest.mark.parametrize(
    ("title", "gb"),
    [
        ("HP ZBook Studio G4 Workstation i7-7700HQ 8GB 256GB SSD Quadro M1200 4GB", 256),
        ("WD 4TB 3.5'' Blue 64MB 5400RPM SATA III Disk (WD40EZRZ)", 4000),
        ("Corsair Vengeance Black CMZ16GX3M2A1600C10 16GB 2x8GB DDR3-1600 CL10 1.5V", None),
        ("AMD FX-8350 8 Core 4.0/4.2 GHz Processor AM3+ 16MB Cache 125W Retail Box", None),
        ("MSI GTX 1070 GAMING X 8G - graphics card 8 GB GDDR5", None),
        ("Casio GA-110GB-1AER G-Shock", None),  # a watch's model code
    ],
)
def test_storage_is_the_drive_not_ram_cache_or_a_code(title, gb):
    assert extract_specs(title).storage_gb == gb


@pytest.mark.parametrize(
    "title",
    [
        'Cartier Drive de Cartier Watch W4100013"',  # a reference number and a closing quote
        "ASUS Intel H110M-A/M.2 Micro ATX Motherboard",
        'D-LINK DCS-5010L Pan & Tilt Network Camera 640X480"',  # pixels, not 16 m
        "Sony Alpha 24.3MP Mirrorless Digital Camera 4x 3.0 inch wide type TFT LCD",
        'HP Smart Array P420/2GB - storage controller SATA 6Gb/s / SAS PCIe 3.0 x8"',
        "Nikkor AF-D 50mm f/1.8",
    ],
)
def test_codes_resolutions_and_zoom_factors_are_not_dimensions(title):
    assert extract_specs(title).dimensions_mm is None


def test_real_sizes_in_titles_are_still_read():
    assert extract_specs("Corsair Air Series AF140 Low Noise 140x140x25mm").dimensions_mm == [
        140,
        140,
        25,
    ]
    assert extract_specs("H 75 cm, W 120 cm").dimensions_mm == [750, 1200]


@pytest.mark.parametrize(
    "title",
    [
        "Casio Ladies' Junior Collection Watch (LQ-139LB-2B2ER)",  # not 139 pounds
        "Mikimoto Necklace Shop Mikimoto G 90118V",  # not 90 kV
    ],
)
def test_units_inside_model_codes_are_not_weights_or_voltages(title):
    specs = extract_specs(title)
    assert specs.weight_g is None and specs.voltage_v is None
