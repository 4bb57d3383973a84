"""A build's keyword terms, tokenised in its first pass and kept on disk for its second.

A Milvus build counts every record's terms before it writes the first row (the stored weights
bake in the corpus's mean length, :mod:`indexing.milvus_backend`). Tokenising each record again
in the second pass would cost as much once more (jieba: about 1.4 ms a record), so the first pass
appends each batch's terms here, in the store's ``num`` order, and the second reads them back in
that order. One batch is held at a time, whatever the corpus size; the file (about 1 KB a record)
is deleted when closed.
"""

from __future__ import annotations

import pickle
import tempfile
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["TermStash"]


class TermStash:
    """Per record ``num``, what :meth:`put` was given for it (any picklable value), read back once
    with :meth:`take` in increasing ``num`` order.

    Parameters
    ----------
    folder : where the temporary file goes (None: the system's temporary folder).
    """

    def __init__(self, folder: Path | None = None):
        self._file = tempfile.TemporaryFile(prefix="caselink-terms-", dir=folder)
        self._reading = False
        self._ahead: deque[tuple[int, Any]] = deque()

    def put(self, nums: Sequence[int], values: Sequence[Any]) -> None:
        """Append one batch; ``nums`` increasing, and above every num put before."""
        if self._reading:
            raise RuntimeError("TermStash.put after take: the stash is written whole, then read")
        pickle.dump((list(nums), list(values)), self._file, protocol=pickle.HIGHEST_PROTOCOL)

    def take(self, num: int) -> Any | None:
        """The value put for ``num``, or None when none was (a record stored after the first pass).
        Nums are asked in increasing order; the ones skipped over are dropped."""
        if not self._reading:
            self._file.seek(0)
            self._reading = True
        while True:
            while self._ahead and self._ahead[0][0] < num:
                self._ahead.popleft()
            if self._ahead:
                return self._ahead.popleft()[1] if self._ahead[0][0] == num else None
            try:
                nums, values = pickle.load(self._file)  # our own file, written by put above
            except EOFError:
                return None
            self._ahead.extend(zip(nums, values))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TermStash":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
