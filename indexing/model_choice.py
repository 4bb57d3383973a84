"""Which encoder ``encoder.model = "auto"`` (the default) means for a given store.

The bundled multilingual USE is the only bundled model that reads Chinese, and caselink's
history is mostly Chinese, so it is the answer for any corpus with a real share of Chinese
text. On a corpus written in English it loses to all-MiniLM-L6-v2, which was trained on a
billion English sentence pairs including duplicate questions; the equal-weight ensemble of the
two beat USE alone on all three English benchmarks in hybrid ranking (emanual hit@1 0.472 ->
0.516, OpenOffice hit@10 0.720 -> 0.762, Hadoop MRR@10 0.569 -> 0.585, with classic BM25)
while keeping USE's multilingual half for the odd Chinese query. MiniLM is not used on
mostly-Chinese corpora: it is English-only, would add noise to Chinese similarities, and it is
the slow half: on 2 cores the ensemble embeds 14 long English reports/s against USE's 125,
and 273 short Chinese questions/s against 1,627 (bench/encoders.md).

The choice is made once, when an index is built from scratch, from a sample of the stored
records, and is recorded in the snapshot's manifest (``model.spec``). Later in-place updates
and server starts keep that model, so a corpus drifting between languages never switches
encoders under an existing index; ``caselink index --rebuild`` chooses again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from caselink.errors import IndexFormatError, IndexNotReady
from indexing.index_dir import IndexDir
from indexing.records import Record
from indexing.store import RecordStore

AUTO = "auto"
MULTILINGUAL = "use-m3"
ENGLISH = "use-m3+minilm"
SAMPLE = 2000
# A record is "English" when its Latin letters outnumber its Chinese characters this many times
# over: one Chinese character carries about as much as a short English word, and Chinese service
# text is full of Latin codes, part numbers and terms ("E1023 报警, laser power 异常") that must
# not make it count as English.
LATIN_PER_CJK = 3.0
# The corpus is English when at least this share of the sampled records is.
ENGLISH_SHARE = 0.8

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


def is_english(text: str) -> bool:
    latin = len(_LATIN.findall(text))
    return latin > 0 and latin > LATIN_PER_CJK * len(_CJK.findall(text))


def choose_model(records: Iterable[Record]) -> tuple[str, str]:
    """(model spec, reason) for a corpus represented by ``records``."""
    texts = [r.searchable_text() for r in records]
    if not texts:
        return MULTILINGUAL, "no records yet: the multilingual encoder"
    share = sum(map(is_english, texts)) / len(texts)
    if share >= ENGLISH_SHARE:
        return ENGLISH, f"{share:.0%} of {len(texts)} sampled records are English: {ENGLISH}"
    return MULTILINGUAL, f"{1 - share:.0%} of {len(texts)} sampled records are not English: {MULTILINGUAL}"


def spec_from_manifest(model: dict) -> str | None:
    """The spec an existing index was built with (manifests before ``spec`` was recorded: by id)."""
    if model.get("spec"):
        return str(model["spec"])
    return {"use-m3": MULTILINGUAL, "st:all-MiniLM-L6-v2": "minilm"}.get(model.get("id", ""))


def resolve_model(spec: str, store: RecordStore, index_root: Path, *, fresh: bool) -> tuple[str, str]:
    """The concrete model spec to load for ``spec`` and why.

    Anything but ``auto`` is returned as given. ``auto`` keeps the current index's model unless
    ``fresh`` (a build from scratch), and otherwise chooses from a sample of ``store``.
    """
    if spec != AUTO:
        return spec, "configured"
    if not fresh:
        try:
            _, manifest = IndexDir(index_root).read_manifest(verify=False)
        except (IndexNotReady, IndexFormatError):
            manifest = {}
        known = spec_from_manifest(manifest.get("model", {}))
        if known:
            return known, f"auto: the model the current index was built with ({known})"
    chosen, why = choose_model(store.sample(SAMPLE))
    return chosen, f"auto: {why}"
