"""Leave-one-out evaluation of :func:`recommender.suggest.suggest_fields` on the demo cases.

For every demo case the case is hidden (its id excluded from the neighbours) and its category,
module, priority and group are predicted from the rest. Per field:

- **coverage**: share of cases that got a suggestion (confidence >= ``min_confidence``);
- **accuracy@threshold**: share of those suggestions that are right;
- **accuracy@all**: the top vote taken for every case, right or wrong, whatever its confidence;
- the same coverage/accuracy pairs at several thresholds, to choose a threshold per field.

Baselines: the majority class (of the other cases), and TF-IDF character 1-2 grams +
logistic regression with 5-fold cross-validated predictions, reported at the same confidence
threshold on its predicted probability and for every case. Both baselines see exactly the text
the suggester searches with (:func:`recommender.suggest.query_text`).

Two views of each case are evaluated: ``full`` (the closed case as stored, what
``GET /v1/records/{id}/suggestions`` sees) and ``triage`` (cause, resolution and workaround
blanked: the case as it is filed, when suggestions matter most).

Run: ``python -m eval.suggest_eval`` (one index build of the demo, about 1-3 minutes on 2 cores,
then two searches per case).
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline

from caselink.config import load_settings
from eval.emerging_eval import demo_records
from indexing.encoders import USEEncoder
from indexing.records import Record
from recommender.service import CaselinkService
from recommender.suggest import DEFAULT_FIELDS, query_text, suggest_fields

THRESHOLDS = (0.5, 0.6, 0.7, 0.8)


def _rate(hit: int, n: int) -> float | None:
    return round(hit / n, 3) if n else None


def at_thresholds(conf: np.ndarray, right: np.ndarray, thresholds: tuple[float, ...]) -> dict[float, dict]:
    """Coverage and accuracy of the suggestions whose confidence reaches each threshold."""
    out = {}
    for t in thresholds:
        covered = conf >= t
        out[t] = {"coverage": _rate(int(covered.sum()), len(conf)),
                  "accuracy@threshold": _rate(int(right[covered].sum()), int(covered.sum()))}
    return out


def triage_view(case: Record) -> Record:
    """The case as it looks when it is filed: no cause, resolution or workaround yet."""
    return case.model_copy(update={"cause": "", "resolution": "", "workaround": ""})


def knn_loo(service: CaselinkService, cases, fields: tuple[str, ...], *,
            k: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Leave-one-out top votes: per field, (confidence, right) arrays over the cases that have the field set."""
    got: dict[str, list[tuple[float, bool]]] = {f: [] for f in fields}
    for case in cases:
        s = suggest_fields(service, record=case, k=k, min_confidence=0.0, fields=fields)
        for f in fields:
            truth = getattr(case, f)
            if not truth:
                continue
            fs = s.fields[f]
            top = fs.alternatives[0].value if fs.alternatives else None
            right = top is not None and top.casefold() == truth.casefold()
            got[f].append((fs.confidence if top is not None else -1.0, right))
    return {f: (np.array([c for c, _ in v]), np.array([r for _, r in v], dtype=bool)) for f, v in got.items()}


def majority_loo(cases, field: str) -> dict[str, Any]:
    """Predict the most common value among the other cases."""
    values = [getattr(c, field) for c in cases if getattr(c, field)]
    counts = Counter(values)
    right = 0
    for v in values:
        counts[v] -= 1
        right += counts.most_common(1)[0][0] == v
        counts[v] += 1
    return {"accuracy@all": _rate(right, len(values)), "n": len(values)}


def logreg_cv(cases, field: str, *, folds: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """TF-IDF char 1-2 grams + logistic regression, 5-fold cross-validated: (confidence, right) per case."""
    rows = [(query_text(c), getattr(c, field)) for c in cases if getattr(c, field)]
    texts, y = [t for t, _ in rows], np.array([v for _, v in rows])
    model = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 2), sublinear_tf=True),
                          LogisticRegression(max_iter=2000, C=10.0))
    proba = cross_val_predict(model, texts, y, cv=KFold(folds, shuffle=True, random_state=0),
                              method="predict_proba")
    classes = np.array(sorted(set(y)))
    pred = classes[proba.argmax(axis=1)]
    return proba.max(axis=1), pred == y


def summary(conf: np.ndarray, right: np.ndarray, min_confidence: float,
            thresholds: tuple[float, ...]) -> dict[str, Any]:
    at = at_thresholds(conf, right, thresholds)
    return {"n": len(conf), "accuracy@all": _rate(int(right.sum()), len(conf)),
            **at_thresholds(conf, right, (min_confidence,))[min_confidence],
            "by_threshold": at}


def run(*, k: int = 15, min_confidence: float = 0.5, fields: tuple[str, ...] = DEFAULT_FIELDS,
        thresholds: tuple[float, ...] = THRESHOLDS, verbose: bool = True) -> dict[str, Any]:
    """Build an index over the demo history, run the evaluation, print a Markdown table."""
    records = demo_records()
    cases = [r for r in records if r.kind == "case"]
    views = {"full": cases, "triage": [triage_view(c) for c in cases]}
    result: dict[str, Any] = {"cases": len(cases), "k": k, "min_confidence": min_confidence,
                              "views": {v: {} for v in views}}
    with tempfile.TemporaryDirectory(prefix="caselink-suggest-") as tmp:
        svc, _ = CaselinkService.build(load_settings(env={}, data_dir=Path(tmp) / "data"), encoder=USEEncoder(),
                                       records=records)
        try:
            t0 = time.perf_counter()
            knn = {v: knn_loo(svc, view, fields, k=k) for v, view in views.items()}
            result["seconds_per_case"] = round((time.perf_counter() - t0) / max(1, 2 * len(cases)), 3)
        finally:
            svc.close()
    for v, view in views.items():
        for f in fields:
            result["views"][v][f] = {"knn": summary(*knn[v][f], min_confidence, thresholds),
                                     "majority": majority_loo(view, f),
                                     "tfidf_logreg": summary(*logreg_cv(view, f), min_confidence, thresholds)}
    if verbose:
        print(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [f"Leave-one-out over {result['cases']} demo cases, k={result['k']}, "
             f"min_confidence={result['min_confidence']}, {result.get('seconds_per_case')} s per case. "
             "'full': the closed case as stored; 'triage': without cause/resolution/workaround.", "",
             "| view | field | n | kNN coverage | kNN acc@threshold | kNN acc@all | majority acc "
             "| LR coverage | LR acc@threshold | LR acc@all |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for v, per_field in result["views"].items():
        for f, r in per_field.items():
            kn, mj, lr = r["knn"], r["majority"], r["tfidf_logreg"]
            lines.append(f"| {v} | {f} | {kn['n']} | {kn['coverage']} | {kn['accuracy@threshold']} "
                         f"| {kn['accuracy@all']} | {mj['accuracy@all']} | {lr['coverage']} "
                         f"| {lr['accuracy@threshold']} | {lr['accuracy@all']} |")
    full = result["views"]["full"]
    thresholds = list(next(iter(full.values()))["knn"]["by_threshold"])
    lines += ["", "'full' view, coverage/accuracy of the suggestions made at each threshold, kNN vote vs TF-IDF+LR:",
              "", "| field | " + " | ".join(f"kNN >= {t} | LR >= {t}" for t in thresholds) + " |",
              "|---|" + "---|---|" * len(thresholds)]
    for f, r in full.items():
        cells = []
        for t in thresholds:
            for side in ("knn", "tfidf_logreg"):
                a = r[side]["by_threshold"][t]
                cells.append(f"{a['coverage']}/{a['accuracy@threshold']}")
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    run()
