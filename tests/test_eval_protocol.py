"""The benchmark protocol: components, question/section restriction, sampling, self-exclusion."""

from __future__ import annotations

import pytest

from caselink.errors import InvalidRecord
from eval.datasets import EvalRecord
from eval.protocol import UnionFind, build_protocol, relevant_sets
from eval.runner import evaluate


def recs(*ids: str, kind: str | None = None) -> list[EvalRecord]:
    return [EvalRecord(i, f"text {i}", kind=kind) for i in ids]


def test_union_find_groups():
    uf = UnionFind()
    for a, b in [("a", "b"), ("c", "d"), ("b", "c"), ("x", "y")]:
        uf.union(a, b)
    groups = sorted(sorted(g) for g in uf.groups())
    assert groups == [["a", "b", "c", "d"], ["x", "y"]]


def test_relevant_sets_are_connected_components_minus_self():
    rel = relevant_sets([("a", "b"), ("b", "c"), ("x", "y")])
    assert rel["a"] == {"b", "c"}
    assert rel["c"] == {"a", "b"}  # transitive: c and a share no pair
    assert rel["x"] == {"y"}


def test_queries_are_records_with_a_partner_and_negatives_are_kept():
    p = build_protocol(recs("a", "b", "c", "d", "e"), [("a", "b", 1), ("b", "c", 1), ("d", "e", 0)])
    assert p.queries == ["a", "b", "c"]
    assert p.relevant == {"a": {"b", "c"}, "b": {"a", "c"}, "c": {"a", "b"}}
    assert p.negatives == [("d", "e")]
    assert p.candidate_ids is None and not p.candidate_kind_filter


def test_label_zero_pairs_do_not_make_queries():
    p = build_protocol(recs("a", "b", "c"), [("a", "b", 0), ("b", "c", 1)])
    assert p.queries == ["b", "c"]


def test_self_pairs_and_duplicates_are_ignored():
    p = build_protocol(recs("a", "b"), [("a", "a", 1), ("a", "b", 1), ("b", "a", 1)])
    assert p.positives == [("a", "b")]
    assert p.relevant == {"a": {"b"}, "b": {"a"}}


def test_question_section_restriction():
    records = recs("q1", "q2", "q3", kind="question") + recs("s1", "s2", kind="section")
    # q1 and q2 share s1; q3 is only paired with another question, so it has no section to find.
    pairs = [("q1", "s1", 1), ("q2", "s1", 1), ("q2", "s2", 1), ("q3", "q1", 0)]
    p = build_protocol(records, pairs + [("q3", "q2", 1)])
    assert p.candidate_kind_filter
    assert p.candidate_ids == {"s1", "s2"}
    assert p.queries == ["q1", "q2", "q3"]
    # components: {q1, q2, q3, s1, s2}; restricted to sections
    assert p.relevant == {"q1": {"s1", "s2"}, "q2": {"s1", "s2"}, "q3": {"s1", "s2"}}

    p = build_protocol(records + recs("q4", kind="question"), pairs + [("q3", "q4", 1)])
    assert "q3" not in p.queries and "q4" not in p.queries  # their component holds no section
    assert "s1" not in p.queries  # sections are never queries


def test_unknown_id_names_the_pair_and_field():
    with pytest.raises(InvalidRecord, match=r"pair 2: field 'id_b': id 'zz' is not among the records") as err:
        build_protocol(recs("a", "b"), [("a", "b", 1), ("a", "zz", 1)])
    assert err.value.field == "id_b"


def test_sampling_is_deterministic_and_capped():
    records = recs(*[f"r{i:03d}" for i in range(200)])
    pairs = [(f"r{i:03d}", f"r{i + 1:03d}", 1) for i in range(0, 200, 2)]
    a = build_protocol(records, pairs, max_queries=50, seed=13)
    b = build_protocol(records, pairs, max_queries=50, seed=13)
    c = build_protocol(records, pairs, max_queries=50, seed=14)
    assert len(a.queries) == 50 and a.eligible_queries == 200
    assert a.queries == b.queries
    assert a.queries != c.queries
    assert a.queries == sorted(a.queries)  # kept in record order
    assert set(a.relevant) == set(a.queries)
    # the documented rule: first max_queries of default_rng(seed).permutation over record order
    import numpy as np

    expected = sorted(f"r{i:03d}" for i in np.random.default_rng(13).permutation(200)[:50])
    assert a.queries == expected


def test_no_sampling_below_cap():
    p = build_protocol(recs("a", "b", "c", "d"), [("a", "b", 1), ("c", "d", 1)], max_queries=4)
    assert p.queries == ["a", "b", "c", "d"]


class EchoRetriever:
    """Returns every record, the query first, scores descending; ignores candidate_ids on purpose."""

    name = "echo"

    def fit(self, records):
        self.ids = [r.id for r in records]

    def rank(self, queries, k, candidate_ids=None):
        out = []
        for q in queries:
            order = [q.id] + [i for i in self.ids if i != q.id]
            out.append([(doc, 1.0 - n / 100) for n, doc in enumerate(order[:k])])
        return out


def test_query_is_never_a_candidate_and_non_candidates_are_dropped():
    records = recs("q1", "q2", kind="question") + recs("s1", "s2", kind="section")
    result = evaluate(records, [("q1", "s2", 1), ("q2", "s1", 1)], {"echo": EchoRetriever()})
    mode = result.modes["echo"]
    for qid, ranked in zip(result.queries, mode.ranked):
        ids = [doc for doc, _ in ranked]
        assert qid not in ids
        assert set(ids) <= {"s1", "s2"}
    # q1's list was [q1, q2, s1, s2]: q1 dropped as itself, q2 as a non-candidate
    assert mode.dropped_non_candidates == 2
    assert mode.metrics["hit@1"] == pytest.approx(0.5)  # q2 -> s1 first; q1 -> s1 first, s2 second


def test_self_is_dropped_without_kinds():
    result = evaluate(recs("a", "b", "c"), [("a", "c", 1)], {"echo": EchoRetriever()})
    ranked = dict(zip(result.queries, result.modes["echo"].ranked))
    assert [d for d, _ in ranked["a"]] == ["b", "c"]
    assert [d for d, _ in ranked["c"]] == ["a", "b"]
    assert result.modes["echo"].dropped_non_candidates == 0
