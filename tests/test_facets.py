"""Facet table: dictionary-encoded columns filter like the values they encode, and survive a round trip."""

from datetime import date

import numpy as np

from indexing.facets import FacetTable, Filters
from indexing.records import Record

RECS = {
    1: Record(id="C-1", kind="case", title="a", product="HX-Etch 500", module="真空", status="open", created="2024-01-05"),
    2: Record(id="C-2", kind="case", title="b", product="HX-Litho 3000", module="光源", status="closed"),
    3: Record(id="PO-1", kind="problem", title="c", product="hx-etch 500", created="2023-12-31"),
    5: Record(id="S-1#1", kind="sop", title="d"),
}


def table() -> FacetTable:
    t = FacetTable()
    for key, rec in RECS.items():
        t.set(key, rec, frozenset({"e1023"}) if key == 1 else frozenset())
    return t


def keys(mask: np.ndarray) -> list[int]:
    return np.flatnonzero(mask).tolist()


def test_filters_match_values_case_insensitively_and_any_of_a_list():
    t = table()
    assert keys(t.mask()) == [1, 2, 3, 5]
    assert keys(t.mask(Filters(product=("HX-ETCH 500",)))) == [1, 3]
    assert keys(t.mask(Filters(product=("HX-Etch 500", "HX-Litho 3000"), kind=("case",)))) == [1, 2]
    assert keys(t.mask(Filters(module=("真空",)))) == [1]
    assert keys(t.mask(Filters(product=("never seen",)))) == []
    assert keys(t.mask(Filters(created_from=date(2024, 1, 1)))) == [1]
    assert keys(t.mask(Filters(created_to=date(2024, 1, 1)))) == [3]  # undated records never match a range
    assert keys(t.mask(Filters(kind=("case",)), exclude={1})) == [2]


def test_open_only_leaves_out_finished_records_in_any_script_and_keeps_the_rest():
    t = table()
    for key, status in [(6, "已關閉"), (7, "Won't-Fix"), (8, "investigating"), (9, " RESOLVED "), (10, "waiting_parts")]:
        t.set(key, Record(id=f"X-{key}", kind="problem", title="x", status=status), frozenset())
    assert keys(t.mask(Filters(open_only=True))) == [1, 3, 5, 8, 10]  # open, no status, SOP, still being worked
    assert keys(t.mask(Filters(open_only=True, kind=("problem",)))) == [3, 8, 10]
    assert not Filters(open_only=True).is_empty()


def test_update_remove_and_round_trip_keep_values_and_codes():
    t = table()
    t.set(2, RECS[2].model_copy(update={"product": "HX-Etch 500", "status": "open"}), frozenset({"a4410", "pn773102"}))
    t.remove(5)
    back = FacetTable.from_json(t.to_json())
    for tab in (t, back):
        assert keys(tab.mask(Filters(product=("hx-etch 500",)))) == [1, 2, 3]
        assert keys(tab.mask(Filters(status=("open",)))) == [1, 2]
        assert tab.value("module", 1) == "真空" and tab.value("product", 2) == "hx-etch 500"
        assert tab.codes == {1: ("e1023",), 2: ("a4410", "pn773102")}
        assert tab.ids == {1: "C-1", 2: "C-2", 3: "PO-1"} and len(tab) == 3


def test_attribute_masks_follow_set_remove_copy_and_a_round_trip():
    t = table()
    t.set(2, RECS[2].model_copy(update={"attributes": {"customer": "ACME", "site": "F12"}}), ())
    t.set(3, RECS[3].model_copy(update={"attributes": {"customer": "acme"}}), ())
    acme = Filters(attributes=Filters.attribute_pairs({"customer": "Acme"}))
    both = Filters(attributes=Filters.attribute_pairs({"customer": "ACME", "site": ["f12", "F14"]}))
    assert keys(t.mask(acme)) == [2, 3] and keys(t.mask(both)) == [2]
    snap = t.copy()
    t.set(3, RECS[3], ())  # attributes dropped by an update
    t.remove(2)
    assert keys(t.mask(acme)) == [] and keys(snap.mask(acme)) == [2, 3]  # the copy is independent
    again = FacetTable.from_json(snap.to_json())
    assert keys(again.mask(both)) == [2] and again.attrs[2] == (("customer", "acme"), ("site", "f12"))
    old = snap.to_json()
    del old["attributes"]  # a snapshot written before attributes existed
    assert keys(FacetTable.from_json(old).mask(acme)) == []
