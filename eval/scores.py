"""Pair-score analysis: how well a similarity separates related from unrelated pairs.

Used by the report to suggest a minimum score below which related-record suggestions are
hidden: the threshold that maximises F1 when "score >= threshold" predicts "related".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Threshold", "best_f1_threshold"]


@dataclass(frozen=True)
class Threshold:
    """A minimum score and how it classifies the labeled pairs."""

    score: float
    precision: float
    recall: float
    f1: float


def best_f1_threshold(positive: np.ndarray, negative: np.ndarray) -> Threshold | None:
    """The score threshold with the highest F1 over label-1 (positive) vs label-0 pairs.

    Every distinct score is tried as a threshold (``score >= t`` means related); among equal
    F1 the higher threshold wins. Returns ``None`` when either side is empty.

    >>> t = best_f1_threshold(np.array([0.9, 0.8, 0.4]), np.array([0.5, 0.45]))
    >>> (t.score, round(t.precision, 2), round(t.recall, 2))
    (0.8, 1.0, 0.67)
    """
    pos = np.asarray(positive, dtype=float)
    neg = np.asarray(negative, dtype=float)
    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if len(pos) == 0 or len(neg) == 0:
        return None
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    tp = np.cumsum(labels)
    fp = np.cumsum(1 - labels)
    # Only the last position of each run of equal scores is a real cut.
    last = np.r_[scores[1:] != scores[:-1], True]
    tp, fp, cut = tp[last], fp[last], scores[last]
    precision = tp / (tp + fp)
    recall = tp / len(pos)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(tp > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = int(np.argmax(f1))  # first maximum = highest threshold
    return Threshold(float(cut[best]), float(precision[best]), float(recall[best]), float(f1[best]))
