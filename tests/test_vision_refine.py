"""Refinements (one statement of a fact finer than the other) are not conflicts."""

from __future__ import annotations

from cumpair.vision.merge import merge_specs
from cumpair.vision.refine import refinement
from cumpair.vision.specs import Material, Specs


def _materials(*pairs: tuple[str, float | None]) -> list[dict]:
    return [{"name": name, "percent": percent} for name, percent in pairs]


def test_percentages_refine_the_same_materials():
    page = _materials(("cotton", None))
    label = _materials(("cotton", 100.0))
    assert refinement("materials", page, [], label, []) == label
    blend = _materials(("cotton", 95.0), ("elastane", 5.0))
    assert refinement("materials", page, [], blend, []) == blend  # the page named the main one


def test_other_materials_or_percentages_are_conflicts():
    page = _materials(("cotton", None))
    assert refinement("materials", page, [], _materials(("polyester", 100.0)), []) is None
    stated = _materials(("cotton", 60.0), ("linen", None))
    label = _materials(("cotton", 80.0), ("linen", 20.0))
    assert refinement("materials", stated, [], label, []) is None


def test_a_quantity_within_the_coarser_printed_rounding_is_a_refinement():
    assert refinement("weight_g", 1500.0, ["Weight: 1.5 kg"], 1520.0, ["Net wt: 1520 g"]) == 1520
    assert refinement("weight_g", 1520.0, ["1520 g"], 1500.0, ["Weight 1.5 kg"]) == 1520
    # 1.5 kg is printed to 0.1 kg: 1580 g is outside 1450..1550
    assert refinement("weight_g", 1500.0, ["Weight: 1.5 kg"], 1580.0, ["1580 g"]) is None
    # integers are taken as exact: 2 kg and 2100 g disagree
    assert refinement("weight_g", 2000.0, ["Weight: 2 kg"], 2100.0, ["2100 g"]) is None


def test_merge_keeps_the_finer_fact_and_reports_only_real_conflicts():
    page = Specs(materials=[Material("cotton")], weight_g=1500.0, model="AB-1")
    page.note("materials", "cotton")
    page.note("weight_g", "Weight: 1.5 kg")
    label = Specs(materials=[Material("cotton", 100.0)], weight_g=1520.0, model="XY-9")
    label.note("weight_g", "Net weight: 1520 g")
    merged, conflicts = merge_specs(page, [("label.png", label)])
    assert merged["materials"] == [{"name": "cotton", "percent": 100.0}]
    assert merged["weight_g"] == 1520.0
    assert [c.field for c in conflicts] == ["model"]
