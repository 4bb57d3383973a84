"""The trees of a learned model, ready to score: LightGBM called through its C API, the serving
path's two calls per request without the Python wrapper's per-call cost.

A learned request makes two LightGBM calls: the raw score of its ~50 candidates, and the SHAP
contributions of the three shown. Through ``lightgbm.Booster.predict`` each call parses a
parameter string into a fresh ``Config``, builds a ``Predictor`` and checks its input in Python;
inside a request, after hybrid's search has pushed all of that out of the caches, the two calls
cost 0.2 and 0.4 ms, against 0.03 and 0.12 ms warm (bench/learned_cost.md). Here the
same library (the ``lib_lightgbm`` shipped inside the ``lightgbm`` wheel) is called through its
documented C API (``c_api.h``): the model is loaded once from its text, the scores come from one
``LGBM_BoosterPredictForMat`` call, and the contributions from a ``FastConfig`` made once
(``LGBM_BoosterPredictForMatSingleRowFastInit``), which keeps its parsed configuration and its
predictor between calls. The answers are LightGBM's own, equal to the wrapper's to the bit
(tests/test_booster.py).

:func:`open_booster` falls back to ``lightgbm.Booster`` (:class:`WrapperBooster`, the same
answers) when the library or one of its symbols cannot be found: another platform's wheel, a
LightGBM without the fast single-row API.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
import weakref
from pathlib import Path

import numpy as np

log = logging.getLogger("caselink.ranker")

# c_api.h's constants.
_DTYPE_FLOAT32 = 0
_PREDICT_NORMAL = 0
_PREDICT_CONTRIB = 3
_PARAMETERS = b"num_threads=1"  # one request, one thread: OpenMP threads spin on a 2-core machine

_LIB: ctypes.CDLL | None = None
_LIB_LOCK = threading.Lock()


def _library() -> ctypes.CDLL | None:
    """``lib_lightgbm`` from the installed lightgbm package, its signatures declared; None when absent."""
    global _LIB
    with _LIB_LOCK:
        if _LIB is not None:
            return _LIB
        import lightgbm

        name = {"darwin": "lib_lightgbm.dylib", "win32": "lib_lightgbm.dll"}.get(sys.platform, "lib_lightgbm.so")
        path = Path(lightgbm.__file__).parent / "lib" / name
        try:
            lib = ctypes.CDLL(str(path))  # the library lightgbm itself loaded: dlopen hands back the same one
            _declare(lib)
        except (OSError, AttributeError) as exc:
            log.info("LightGBM's C API is not usable here (%s): ranking through lightgbm.Booster", exc)
            return None
        _LIB = lib
        return lib


def _declare(lib: ctypes.CDLL) -> None:
    vp, i32, dp = ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_double)
    c_int, pi64 = ctypes.c_int, ctypes.POINTER(ctypes.c_int64)
    sigs = {
        "LGBM_GetLastError": ([], ctypes.c_char_p),
        "LGBM_BoosterLoadModelFromString": ([ctypes.c_char_p, ctypes.POINTER(c_int), ctypes.POINTER(vp)], c_int),
        "LGBM_BoosterGetNumFeature": ([vp, ctypes.POINTER(c_int)], c_int),
        "LGBM_BoosterFree": ([vp], c_int),
        "LGBM_BoosterPredictForMat": ([vp, vp, c_int, i32, i32, c_int, c_int, c_int, c_int, ctypes.c_char_p, pi64, dp],
                                      c_int),
        "LGBM_BoosterPredictForMatSingleRowFastInit": ([vp, c_int, c_int, c_int, c_int, i32, ctypes.c_char_p,
                                                        ctypes.POINTER(vp)], c_int),
        "LGBM_BoosterPredictForMatSingleRowFast": ([vp, vp, pi64, dp], c_int),
        "LGBM_FastConfigFree": ([vp], c_int),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)  # AttributeError: a LightGBM without it
        fn.argtypes, fn.restype = args, res


class NativeError(RuntimeError):
    """A LightGBM C API call failed (its own message)."""


def _check(lib: ctypes.CDLL, code: int, what: str) -> None:
    if code != 0:
        raise NativeError(f"LightGBM {what}: {lib.LGBM_GetLastError().decode('utf-8', 'replace')}")


class NativeBooster:
    """A model's trees, loaded once from LightGBM's text format. Build with :func:`open_booster`.

    ``predict`` may run on many threads at once (LightGBM's batch prediction shares its
    booster); ``contributions`` goes through one ``FastConfig``, which holds one predictor's
    buffers, so its calls take turns (LightGBM 4.7 also locks the booster around a fast call;
    the lock here does not depend on that).
    """

    def __init__(self, lib: ctypes.CDLL, handle: ctypes.c_void_p, contrib: ctypes.c_void_p, n_features: int):
        self._lib, self._handle, self._contrib = lib, handle, contrib
        self.n_features = n_features
        self._contrib_lock = threading.Lock()
        # The FastConfig points into the booster: freed first.
        weakref.finalize(self, _free, lib, handle, contrib)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (float64, one per row) of the float32 rows of ``X``: the trees' sum."""
        X = self._rows(X)
        out = np.empty(len(X), dtype=np.float64)
        got = ctypes.c_int64()
        _check(self._lib, self._lib.LGBM_BoosterPredictForMat(
            self._handle, X.ctypes.data, _DTYPE_FLOAT32, len(X), self.n_features, 1, _PREDICT_NORMAL, 0, -1,
            _PARAMETERS, ctypes.byref(got), out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))), "predict")
        return out

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """SHAP values per row, (rows, features + 1): the last column is the trees' expected
        value, as ``lightgbm.Booster.predict(pred_contrib=True)`` gives them."""
        X = self._rows(X)
        out = np.empty((len(X), self.n_features + 1), dtype=np.float64)
        got = ctypes.c_int64()
        fast = self._lib.LGBM_BoosterPredictForMatSingleRowFast
        with self._contrib_lock:
            for i in range(len(X)):
                _check(self._lib, fast(self._contrib, X[i].ctypes.data, ctypes.byref(got),
                                       out[i].ctypes.data_as(ctypes.POINTER(ctypes.c_double))), "contributions")
        return out

    def _rows(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {X.shape}")
        return X


def _free(lib: ctypes.CDLL, handle: ctypes.c_void_p, contrib: ctypes.c_void_p) -> None:
    lib.LGBM_FastConfigFree(contrib)
    lib.LGBM_BoosterFree(handle)


class WrapperBooster:
    """The same two calls through ``lightgbm.Booster``, where the C API cannot be used."""

    def __init__(self, model_text: str):
        import lightgbm as lgb

        self._booster = lgb.Booster(model_str=model_text)
        self.n_features = self._booster.num_feature()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._booster.predict(X, num_threads=1), dtype=np.float64)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._booster.predict(X, pred_contrib=True, num_threads=1), dtype=np.float64)


def open_booster(model_text: str, *, native: bool = True) -> "NativeBooster | WrapperBooster":
    """The trees of ``model_text`` (LightGBM's text format): behind the C API, or, when the
    library cannot be used here or ``native`` is False, behind ``lightgbm.Booster``.

    Raises:
        NativeError: LightGBM refused the text (``lightgbm.Booster`` refuses it too).
    """
    lib = _library() if native else None
    if lib is None:
        return WrapperBooster(model_text)
    handle, iterations, n = ctypes.c_void_p(), ctypes.c_int(), ctypes.c_int()
    _check(lib, lib.LGBM_BoosterLoadModelFromString(model_text.encode("utf-8"), ctypes.byref(iterations),
                                                    ctypes.byref(handle)), "load the model")
    contrib = ctypes.c_void_p()
    try:
        _check(lib, lib.LGBM_BoosterGetNumFeature(handle, ctypes.byref(n)), "count the features")
        _check(lib, lib.LGBM_BoosterPredictForMatSingleRowFastInit(handle, _PREDICT_CONTRIB, 0, -1, _DTYPE_FLOAT32,
                                                                   n.value, _PARAMETERS, ctypes.byref(contrib)),
               "prepare contributions")
    except NativeError:
        lib.LGBM_BoosterFree(handle)
        raise
    return NativeBooster(lib, handle, contrib, n.value)
