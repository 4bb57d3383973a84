"""The build's on-disk hand-over of terms from its first pass to its second (indexing/term_stash.py)."""

from __future__ import annotations

import pytest

from indexing.term_stash import TermStash


def test_values_come_back_by_num_in_order_and_nums_never_put_or_skipped_give_none(tmp_path):
    with TermStash(tmp_path) as stash:
        stash.put([1, 3, 4], [(["a", "b"], frozenset({"e1"}), ["a"]), (["c"], frozenset(), []), (["d"], frozenset(), [])])
        stash.put([7, 9], [(["x"], frozenset(), ["x"]), (["y", "y"], frozenset(), [])])
        assert stash.take(1) == (["a", "b"], frozenset({"e1"}), ["a"])
        assert stash.take(2) is None  # stored after the first pass: not stashed
        assert stash.take(4) == (["d"], frozenset(), [])  # 3 was deleted between the passes: skipped
        assert stash.take(9) == (["y", "y"], frozenset(), [])
        assert stash.take(10) is None
        with pytest.raises(RuntimeError, match="put after take"):
            stash.put([11], [None])
    assert list(tmp_path.iterdir()) == []  # the file was anonymous and is gone
