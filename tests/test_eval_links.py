"""Labeled pairs derived from caselink record links and feedback."""

from __future__ import annotations

from eval.links import pairs_from_links
from eval.protocol import build_protocol
from eval.datasets import from_record
from indexing.records import Record


def corpus() -> list[Record]:
    return [
        Record(id="C-1", kind="case", module="vacuum", links=["PO-1", "SOP#2"]),
        Record(id="C-2", kind="case", module="vacuum", links=["PO-1"]),
        Record(id="C-3", kind="case", module="vacuum"),
        Record(id="C-4", kind="case", module="laser", links=["GONE"]),
        Record(id="C-5", kind="case", module="laser"),
        Record(id="C-6", kind="case", module="vacuum"),
        Record(id="PO-1", kind="problem", module="vacuum", links=["C-6"]),
        Record(id="SOP#2", kind="sop", module="vacuum"),
    ]


def positives(pairs):
    return {(a, b) for a, b, label in pairs if label == 1}


def test_links_and_shared_problem_orders_are_related():
    pairs = pairs_from_links(corpus())
    assert positives(pairs) == {
        ("C-1", "PO-1"), ("C-1", "SOP#2"), ("C-2", "PO-1"), ("C-6", "PO-1"),  # direct links, both directions
        ("C-1", "C-2"), ("C-1", "C-6"), ("C-2", "C-6"),  # cases sharing problem order PO-1
    }
    assert all(a <= b for a, b, _ in pairs)
    assert not any("GONE" in (a, b) for a, b, _ in pairs)  # links to unknown ids are skipped


def test_negatives_share_the_module_and_no_link():
    recs = {r.id: r for r in corpus()}
    pairs = pairs_from_links(corpus())
    negs = [(a, b) for a, b, label in pairs if label == 0]
    assert negs, "expected sampled negatives"
    component = {"C-1", "C-2", "C-6", "PO-1", "SOP#2"}
    for a, b in negs:
        assert not ({a, b} <= component)  # never two records of one related component
        assert recs[a].module == recs[b].module or "" in (recs[a].module, recs[b].module)
    # C-3 is the only vacuum record outside the component
    assert all("C-3" in pair for pair in negs)


def test_feedback_adds_and_overrides_labels():
    feedback = [("C-4", "C-5", True), ("C-1", "SOP#2", False), ("C-1", "missing", True)]
    pairs = pairs_from_links(corpus(), feedback)
    labels = {(a, b): label for a, b, label in pairs}
    assert labels[("C-4", "C-5")] == 1
    assert labels[("C-1", "SOP#2")] == 0
    assert not any("missing" in key for key in labels)


def test_deterministic_for_a_seed():
    assert pairs_from_links(corpus(), seed=13) == pairs_from_links(corpus(), seed=13)


def test_pairs_feed_the_protocol():
    recs = corpus()
    p = build_protocol([from_record(r) for r in recs], pairs_from_links(recs))
    assert p.relevant["C-2"] == {"C-1", "C-6", "PO-1", "SOP#2"}
    assert p.negatives
