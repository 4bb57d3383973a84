"""The learned ranker's model: a LightGBM lambdarank booster, its calibration, its file.

A model is one JSON file next to the index (``<data_dir>/index/ranker.json``): the booster in
LightGBM's own text format, the calibration as two arrays, the feature names it was
trained on, the training data's size and date, and its validation figures; a sha256 over the
rest of the file guards it. No pickle. It is written to a temporary file and renamed into
place, so a server never reads half a model; a wrong format version, a bad checksum or
different features are refused with the command that makes a new one.

**Prior.** Boosting starts from the hybrid ranking as hybrid serves it (format 3): a
candidate's raw score is ``scale * its fused score``, plus ``code_weight`` per exact code it
shares with a query naming one to three (the exact-code rule, recommender.fusion.codes_first),
plus the trees' output. So the trees learn corrections to hybrid, a model with no trees
(validation could not tell the trees' gain from noise) ranks exactly as hybrid, and the
calibration is fitted on the order that is served. The prior is saved with the model and added
at serving as at training (LightGBM's ``init_score`` is not part of its model: the caller adds
it back). Format 2 files (prior ``hybrid_score``: the fused score alone) and format 1 files
(trees alone, no prior) still load and rank as they did; serving applies the code rule on top
of every model (recommender.ranking), so all of them keep hybrid's rules.

``calibrate`` maps the raw score to the estimated probability that the candidate is relevant: a
monotone piecewise-linear map (Platt's logistic curve sampled on a grid, or isotonic regression's
steps, whichever cross-validated better; :mod:`recommender.calibration`), fitted on out-of-fold
scores of the training components, so ranking by the probability is ranking by the raw score.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from caselink.errors import IndexFormatError
from recommender.booster import NativeBooster, WrapperBooster, open_booster
from recommender.features import FEATURES
from recommender.fusion import CODES_FIRST_MAX, Fused

FORMAT_VERSION = 3
READABLE_FORMATS = (1, 2, 3)  # 1: the trees alone, no prior; 2: prior hybrid_score only
FILE_NAME = "ranker.json"
log = logging.getLogger("caselink.ranker")
RETRAIN_HINT = "train a new one with: caselink train"


def ranker_path(settings) -> Path:
    """Where the model for ``settings``' index lives (beside the index snapshots)."""
    return Path(settings.index_root) / FILE_NAME


def _checksum(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


PRIOR_KINDS = ("none", "hybrid_score", "hybrid_with_codes")
PRIOR_LABEL = "hybrid ranking"  # the prior's line among a result's learned factors


@dataclass(frozen=True)
class Prior:
    """The ranking boosting starts from.

    - ``none``: zeros (format 1: trees alone).
    - ``hybrid_score``: ``scale * fused_score`` (format 2): the fused order, without the code rule.
    - ``hybrid_with_codes``: that plus ``code_weight`` per exact code the candidate shares with a
      query naming 1 to ``max_codes`` codes: hybrid's order as served, the exact-code rule
      included (:func:`recommender.fusion.codes_first`), since a ``code_weight`` above ``scale``
      outweighs any fused score (0-1). Ties keep the fused order when reranked, as in codes_first.
      With ``keyword_rank`` above 0 (chosen by training only when the labels credibly say the
      keyword side deserves more trust than fusion gives it) it adds ``scale * keyword_rank *
      -log(1 + the keyword side's rank)``: hybrid leaning on keyword; 0 is hybrid exactly.

    ``baseline`` is the prior's mean over the training candidates: an explanation shows a
    candidate's prior against it, as SHAP shows each feature against the trees' average.
    """

    kind: str = "none"
    scale: float = 0.0
    baseline: float = 0.0
    code_weight: float = 0.0
    max_codes: int = 0
    keyword_rank: float = 0.0

    @classmethod
    def hybrid(cls, scale: float, baseline: float = 0.0, keyword_rank: float = 0.0) -> "Prior":
        """The served hybrid ranking at ``scale`` (leaning on the keyword side's rank by
        ``keyword_rank``): the code rule outweighs the whole fused range and the keyword lean's
        (a log rank below 10: ranks up to 20,000)."""
        return cls("hybrid_with_codes", float(scale), baseline, code_weight=float(scale) * (2.0 + 10.0 * keyword_rank),
                   max_codes=CODES_FIRST_MAX, keyword_rank=float(keyword_rank))

    def scores(self, X: np.ndarray, features: tuple[str, ...]) -> np.ndarray:
        """The prior's raw score per row of ``X`` (zeros for ``none``)."""
        if self.kind == "none" or len(X) == 0:
            return np.zeros(len(X), dtype=np.float64)
        out = self.scale * np.asarray(X[:, features.index("fused_score")], dtype=np.float64)
        if self.kind == "hybrid_with_codes":
            shared = np.asarray(X[:, features.index("codes_shared")], dtype=np.float64)
            named = shared + np.asarray(X[:, features.index("codes_missing")], dtype=np.float64)
            # Every row of a list has the query's count of codes: the rule is on for the whole list or off.
            out = out + np.where((named >= 1) & (named <= self.max_codes), self.code_weight * shared, 0.0)
            if self.keyword_rank:
                out = out - self.scale * self.keyword_rank * np.asarray(
                    X[:, features.index("keyword_log_rank")], dtype=np.float64)
        return out

    def to_json(self) -> dict:
        out = {"kind": self.kind, "scale": self.scale, "baseline": self.baseline}
        if self.kind == "hybrid_with_codes":
            out.update(code_weight=self.code_weight, max_codes=self.max_codes)
            if self.keyword_rank:
                out["keyword_rank"] = self.keyword_rank
        return out

    @classmethod
    def from_json(cls, data, where: str) -> "Prior":
        if not isinstance(data, dict) or data.get("kind") not in PRIOR_KINDS:
            got = data.get("kind") if isinstance(data, dict) else data
            raise IndexFormatError(f"ranker model {where}: expected a prior of kind {' or '.join(PRIOR_KINDS)}, "
                                   f"got {got!r}", hint=RETRAIN_HINT)
        try:
            prior = cls(data["kind"], float(data.get("scale", 0.0)), float(data.get("baseline", 0.0)),
                        float(data.get("code_weight", 0.0)), int(data.get("max_codes", 0)),
                        float(data.get("keyword_rank", 0.0)))
        except (TypeError, ValueError):
            raise IndexFormatError(f"ranker model {where}: the prior's scale, baseline, code_weight and max_codes "
                                   f"must be numbers, got {data.get('scale')!r}, {data.get('baseline')!r}, "
                                   f"{data.get('code_weight')!r}, {data.get('max_codes')!r}", hint=RETRAIN_HINT) from None
        least = prior.scale * (1.0 + 10.0 * prior.keyword_rank)  # the fused range and the keyword lean's
        if prior.kind == "hybrid_with_codes" and not (prior.code_weight > least and prior.keyword_rank >= 0):
            raise IndexFormatError(f"ranker model {where}: expected the prior's code_weight above {least} and its "
                                   f"keyword_rank >= 0, got {prior.code_weight} and {prior.keyword_rank}",
                                   hint=RETRAIN_HINT)
        return prior


@dataclass
class RankerModel:
    """A trained ranker. Build with :func:`recommender.training.train` or :meth:`load`.

    Attributes:
        booster_text: LightGBM's text model; '' for none (no tree beat the prior on validation).
        calibration_x, calibration_y: the calibration's points, raw score -> probability
            (linear between them, flat beyond; Platt or isotonic: ``info["calibration"]``).
        info: training size, date, settings and validation figures (what ``caselink train`` prints).
        features: the feature names, in column order.
        depth: the ``rank.learned_depth`` its lists were gathered at (0 = whole lists); None when
            the file does not say (formats 1 and 2, and models fitted outside :func:`train`).
    """

    booster_text: str
    calibration_x: list[float]
    calibration_y: list[float]
    info: dict = field(default_factory=dict)
    features: tuple[str, ...] = FEATURES
    prior: Prior = Prior()
    depth: int | None = None
    _compiled: "_Compiled | None" = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        """Whether validation found it at least as good as the hybrid ranking it reranks."""
        return bool(self.info.get("validation", {}).get("passed", False))

    def depth_note(self, configured: int) -> str | None:
        """Why serving at ``configured`` candidates is not what this model was trained for, or
        None when it is (or the file does not say). The model still ranks: its features do not
        depend on the depth, but it learned from, and was validated on, lists of its own depth."""
        if self.depth is None or self.depth == configured:
            return None
        name = lambda d: "the whole list" if d == 0 else f"{d} candidates"  # noqa: E731
        return (f"the learned ranker was trained on {name(self.depth)} (rank.learned_depth = {self.depth}) and "
                f"reranks {name(configured)} here (rank.learned_depth = {configured}): its validation figures are "
                f"not this server's; retrain (caselink train) or set rank.learned_depth = {self.depth}")

    def _ready(self) -> "_Compiled":
        # Built whole, then published in one assignment: a server's threads never see half of it.
        if self._compiled is None:
            self._compiled = _Compiled.of(self)
        return self._compiled

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The ranking score per row (higher = more relevant): the prior plus the trees."""
        if len(X) == 0:
            return np.zeros(0, dtype=np.float64)
        out = self.prior.scores(X, self.features)
        booster = self._ready().booster
        if booster is not None:
            out = out + booster.predict(X)
        return out

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Estimated probability of relevance for raw scores (monotone non-decreasing)."""
        c = self._ready()
        if len(c.cx) == 0:
            return np.clip(1.0 / (1.0 + np.exp(-raw)), 0.0, 1.0)
        return np.clip(np.interp(raw, c.cx, c.cy), 0.0, 1.0)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contributions of the trees to the raw score (SHAP values, LightGBM
        ``pred_contrib``), shape (rows, features); the bias column is dropped. The prior's share
        is :meth:`prior_contribution`."""
        booster = self._ready().booster
        if len(X) == 0 or booster is None:
            return np.zeros((len(X), len(self.features)))
        return booster.contributions(X)[:, :-1]

    def prior_contribution(self, X: np.ndarray) -> np.ndarray:
        """What the hybrid ranking (the prior) adds to each row's raw score against the
        training candidates' average (zeros without a prior)."""
        if self.prior.kind == "none":
            return np.zeros(len(X))
        return self.prior.scores(X, self.features) - self.prior.baseline

    # -- persistence ------------------------------------------------------------------------
    def to_json(self) -> dict:
        body = {"format": FORMAT_VERSION, "features": list(self.features), "info": self.info,
                "calibration": {"x": self.calibration_x, "y": self.calibration_y},
                "prior": self.prior.to_json(), "depth": self.depth, "lightgbm": self.booster_text}
        return {**body, "sha256": _checksum(body)}

    def save(self, path: Path) -> Path:
        """Write atomically (temporary file, fsync, rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(self.to_json(), fh, ensure_ascii=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: Path, features: tuple[str, ...] = FEATURES) -> "RankerModel":
        """Read and check a model file against the ``features`` the service computes (which
        depend on its encoder: :func:`recommender.features.feature_names`).
        Raises :class:`IndexFormatError` naming what is wrong."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"ranker model {path} cannot be read: {exc}", hint=RETRAIN_HINT) from None
        if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise IndexFormatError(f"ranker model {path}: expected format "
                                   f"{' or '.join(map(str, READABLE_FORMATS))}, got {got}", hint=RETRAIN_HINT)
        body = {k: v for k, v in data.items() if k != "sha256"}
        if data.get("sha256") != _checksum(body):
            raise IndexFormatError(f"ranker model {path}: checksum mismatch (the file was changed or cut short)",
                                   hint=RETRAIN_HINT)
        if tuple(data["features"]) != tuple(features):
            raise IndexFormatError(f"ranker model {path} was trained on other features than this caselink computes",
                                   hint=RETRAIN_HINT)
        prior = Prior.from_json(data.get("prior"), str(path)) if data["format"] >= 2 else Prior()
        if prior.kind == "hybrid_with_codes" and data["format"] < 3:
            raise IndexFormatError(f"ranker model {path}: a prior of kind hybrid_with_codes in a format "
                                   f"{data['format']} file", hint=RETRAIN_HINT)
        reads = {"none": (), "hybrid_score": ("fused_score",),
                 "hybrid_with_codes": ("fused_score", "codes_shared", "codes_missing")}[prior.kind]
        reads += ("keyword_log_rank",) if prior.keyword_rank else ()
        absent = [name for name in reads if name not in data["features"]]
        if absent:
            raise IndexFormatError(f"ranker model {path}: its prior reads {', '.join(absent)}, not among its "
                                   "features", hint=RETRAIN_HINT)
        depth = data.get("depth")  # absent before format 3 recorded it
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
            raise IndexFormatError(f"ranker model {path}: expected depth to be a whole number >= 0 or null, "
                                   f"got {depth!r}", hint=RETRAIN_HINT)
        cal = data["calibration"]
        return cls(booster_text=data["lightgbm"], calibration_x=list(cal["x"]), calibration_y=list(cal["y"]),
                   info=data.get("info", {}), features=tuple(data["features"]), prior=prior, depth=depth)


class RankerSlot:
    """The model file a service ranks with, re-read when it changes on disk.

    ``current()`` stats the file at most once a second, so a model written by ``caselink
    train`` while a server runs is picked up within a second, as the server picks up records
    another process wrote. A model that cannot be loaded is reported in ``error`` and not used.
    """

    CHECK_EVERY = 1.0

    def __init__(self, path: Path, features: tuple[str, ...] = FEATURES, depth: int | None = None):
        self.path = path
        self.features = features
        self.depth = depth  # the rank.learned_depth served, to check a model's own against
        self.error: str | None = None
        self._model: RankerModel | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._pinned = False
        self._lock = threading.Lock()

    def pin(self, model: RankerModel | None) -> None:
        """Use ``model`` whatever the file holds (evaluation, tests); ``None`` goes back to the file."""
        with self._lock:
            self._model, self._pinned, self._stamp, self._checked = model, model is not None, None, 0.0

    def for_request(self, setting: str, *, asked: str | None, mode: str) -> tuple[RankerModel | None, str | None]:
        """The model to rerank a request with, and why none when mode 'learned' was asked for.

        ``rank.learned = "auto"`` uses a model that passed its validation for requests that do
        not name a mode; ``mode = "learned"`` uses any model that loads; ``"off"`` never uses one.
        """
        if setting == "off":
            return None, ("rank.learned is off: hybrid answered" if mode == "learned" else None)
        if mode == "learned":
            model = self.current()
            if model is None:
                why = self.error or "no trained ranker next to the index (caselink train makes one)"
                return None, f"{why}: hybrid answered"
            return model, None
        if asked is None and mode == "hybrid":
            model = self.current()
            return (model if model is not None and model.passed else None), None
        return None, None

    def current(self) -> RankerModel | None:
        now = time.monotonic()
        if self._pinned or now - self._checked < self.CHECK_EVERY:
            return self._model
        with self._lock:
            if self._pinned:
                return self._model
            self._checked = now
            try:
                st = self.path.stat()
            except FileNotFoundError:
                self._model, self._stamp, self.error = None, None, None
                return None
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._model, self.error = RankerModel.load(self.path, self.features), None
                except IndexFormatError as exc:
                    self._model, self.error = None, str(exc)
                if note := self.warning(self._model):
                    log.warning("%s: %s", self.path, note)
            return self._model

    def warning(self, model: RankerModel | None) -> str | None:
        """What is wrong with serving ``model`` here: the file refused, or trained at another depth."""
        if model is None:
            return self.error
        return model.depth_note(self.depth) if self.depth is not None else None


@dataclass(frozen=True)
class _Compiled:
    """A model made ready to score: its trees (None: none; :mod:`recommender.booster`) and the
    calibration as arrays."""

    booster: "NativeBooster | WrapperBooster | None"
    cx: np.ndarray
    cy: np.ndarray

    @classmethod
    def of(cls, model: RankerModel) -> "_Compiled":
        booster = open_booster(model.booster_text) if model.booster_text else None
        return cls(booster, np.asarray(model.calibration_x, dtype=np.float64),
                   np.asarray(model.calibration_y, dtype=np.float64))


def rerank(model: RankerModel, fused: Fused, X: np.ndarray) -> tuple[Fused, np.ndarray]:
    """``fused`` reordered by the model, scores its calibrated probabilities, and the rows of
    ``X`` in the new order (for explanations). Ties keep the fused order."""
    if len(fused.keys) == 0:
        return fused, X
    raw = model.raw(X)
    order = np.lexsort((np.arange(len(raw)), -raw))
    probs = model.calibrate(raw[order])
    # Isotonic steps are flat: keep the shown scores non-increasing down the list exactly.
    probs = np.minimum.accumulate(probs).astype(np.float32)
    return Fused(fused.keys[order], probs, fused.dense, fused.keyword), X[order]


def factors(model: RankerModel, X: np.ndarray, top: int = 3) -> list[list[str]]:
    """For each row, the ``top`` features that moved its raw score most, as 'name +0.42'; the
    prior, when the model has one, competes as one more line, 'hybrid ranking +0.42'."""
    if len(X) == 0:
        return []
    contrib = np.column_stack([model.contributions(X), model.prior_contribution(X)])
    names = (*model.features, PRIOR_LABEL)
    if model.prior.kind == "none":
        contrib, names = contrib[:, :-1], names[:-1]
    idx = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :top]
    return [[f"{names[j]} {contrib[i, j]:+.2f}" for j in row] for i, row in enumerate(idx)]
