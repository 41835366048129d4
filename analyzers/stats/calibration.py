"""Scores into probabilities of the positive class: calibration chosen and checked by cross-validation.

Performance estimation without labels (CBPE, :mod:`analyzers.stats.estimation`) reads each score as
the probability that its prediction is right, so the scores must first mean what they say.  Three
maps are candidates, fitted on labelled reference predictions:

``none``
    the scores as they are (only when every score lies in [0, 1]);
``platt``
    a logistic curve ``1 / (1 + exp(-(a·x + b)))`` (Platt 1999), on ``x = logit(score)`` when the
    scores are probabilities (so ``a = 1, b = 0`` is the identity) and on the raw score otherwise;
``isotonic``
    the best non-decreasing step function (pool-adjacent-violators; Zadrozny and Elkan 2002),
    linear between its steps and flat beyond the reference's range.

Each candidate predicts every reference row from a map fitted on the other folds (stratified
k-fold); the candidates are compared by the Brier score of these out-of-fold probabilities, and the
simplest one (in the order above) within one standard error of the best is kept (the one-standard-
error rule, Hastie, Tibshirani and Friedman, *The Elements of Statistical Learning*, §7.10): a more
flexible map must earn its place.  The kept map is then refitted on every row.

The check: the expected calibration error (ECE, Naeini, Cooper and Hauskrecht 2015) of the kept
method's out-of-fold probabilities over equal-mass bins, the mean gap between predicted and observed
rates.  It measures how far the probabilities that CBPE will use are from the truth on data the map
did not see; above a limit, an estimate is not worth giving.

References: J. Platt, "Probabilistic outputs for support vector machines", 1999; B. Zadrozny and
C. Elkan, "Transforming classifier scores into accurate multiclass probability estimates", KDD 2002;
M. P. Naeini, G. Cooper, M. Hauskrecht, "Obtaining well calibrated probabilities using Bayesian
binning", AAAI 2015.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from analyzers.stats.threads import one_thread

CalibrationMethod = Literal["none", "platt", "isotonic"]
METHODS: tuple[CalibrationMethod, ...] = ("none", "platt", "isotonic")  # simplest first
ECE_BINS = 10
PLATT_C = 1e6  # practically unpenalised: Platt's two parameters need no shrinkage at these sizes
_LOGIT_CLIP = 1e-6


class Calibrator(Protocol):
    """A fitted map from scores to probabilities of the positive class."""

    @property
    def method(self) -> CalibrationMethod: ...

    def __call__(self, scores: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Identity:
    """The scores taken as probabilities."""

    method: CalibrationMethod = "none"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)


@dataclass(frozen=True)
class Platt:
    """``sigmoid(slope · x + intercept)`` with ``x`` the score, or its logit when ``on_logit``."""

    slope: float
    intercept: float
    on_logit: bool
    method: CalibrationMethod = "platt"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        x = _platt_input(np.asarray(scores, dtype=float), self.on_logit)
        return _sigmoid(self.slope * x + self.intercept)


@dataclass(frozen=True)
class Isotonic:
    """A non-decreasing map through the points ``(x, y)``, linear between them, flat beyond them."""

    x: np.ndarray
    y: np.ndarray
    method: CalibrationMethod = "isotonic"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(scores, dtype=float), self.x, self.y)


@dataclass(frozen=True)
class Candidate:
    """One calibration method's cross-validated Brier score and its standard error against the best."""

    method: CalibrationMethod
    brier: float
    se_vs_best: float


@dataclass(frozen=True)
class Calibration:
    """The kept map, how the candidates scored, and the out-of-fold check of the kept one.

    ``out_of_fold`` holds the kept method's probability for every input row from a map that did not
    see that row (so the estimate's own error can be measured on the reference).
    """

    calibrator: Calibrator
    candidates: list[Candidate]
    ece: float
    n: int
    folds: int
    out_of_fold: np.ndarray = field(repr=False)

    @property
    def method(self) -> CalibrationMethod:
        return self.calibrator.method

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "ece": self.ece,
            "n": self.n,
            "folds": self.folds,
            "candidates": [{"method": c.method, "brier": c.brier, "se_vs_best": c.se_vs_best} for c in self.candidates],
        }


def fit_calibrator(
    method: CalibrationMethod, scores: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None
) -> Calibrator:
    """Fit one calibration map on scores and whether each was a positive (optionally weighted)."""
    s, y, w = _collapse(
        np.asarray(scores, dtype=float),
        np.asarray(positive, dtype=bool),
        np.ones(len(scores)) if weights is None else np.asarray(weights, dtype=float),
    )
    return _fit_collapsed(method, s, y, w)


def _fit_collapsed(method: CalibrationMethod, s: np.ndarray, y: np.ndarray, w: np.ndarray) -> Calibrator:
    """:func:`fit_calibrator` on rows already collapsed to one per distinct (score, class)."""
    if method == "none":
        if len(s) and (s.min() < 0 or s.max() > 1):
            raise ValueError("calibration 'none' needs scores in [0, 1]: use 'platt' or 'isotonic'")
        return Identity()
    if method == "platt":
        on_logit = bool(len(s)) and s.min() >= 0 and s.max() <= 1
        if y.all() or not y.any():
            rate = _clip_rate(float(np.average(y, weights=w)) if len(y) else 0.5)
            return Platt(0.0, math.log(rate / (1 - rate)), on_logit)
        x = _platt_input(s, on_logit)
        model = LogisticRegression(C=PLATT_C, max_iter=1000).fit(x[:, None], y.astype(int), sample_weight=w)
        return Platt(float(model.coef_[0, 0]), float(model.intercept_[0]), on_logit)
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
        iso.fit(s, y.astype(float), sample_weight=w)
        return Isotonic(np.asarray(iso.X_thresholds_, dtype=float), np.asarray(iso.y_thresholds_, dtype=float))
    raise ValueError(f"unknown calibration method {method!r}: expected one of {', '.join(METHODS)}")


def calibrate(
    scores: np.ndarray,
    positive: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    method: CalibrationMethod | Literal["auto"] = "auto",
    folds: int = 5,
    seed: int = 0,
) -> Calibration:
    """Choose (``auto``) or take the calibration method by k-fold cross-validation, then refit it on all rows.

    Needs at least ``folds`` positives and ``folds`` negatives; raises ``ValueError`` otherwise.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(positive, dtype=bool)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=float)
    if not (len(s) == len(y) == len(w)):
        raise ValueError("scores, positive and weights must have the same length")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite (drop rows without a score first)")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if min(n_pos, n_neg) < folds:
        raise ValueError(f"calibration needs at least {folds} positives and {folds} negatives, got {n_pos} and {n_neg}")
    unit = bool(s.min() >= 0 and s.max() <= 1)
    if method == "auto":
        tried: list[CalibrationMethod] = [m for m in METHODS if unit or m != "none"]
    else:
        if method == "none" and not unit:
            raise ValueError("calibration 'none' needs scores in [0, 1]: use 'platt' or 'isotonic'")
        tried = [method]
    oof = {m: np.empty(len(s)) for m in tried}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # Rows of one score and class fit as one weighted row: sorted and grouped once, each fold's training rows
    # are the groups' weights summed over the fold (no sort per fold).
    order = np.lexsort((y, s))
    sorted_s, sorted_y = s[order], y[order]
    new_group = np.concatenate([[True], (np.diff(sorted_s) != 0) | (np.diff(sorted_y.astype(np.int8)) != 0)])
    group = np.empty(len(s), dtype=np.intp)
    group[order] = np.cumsum(new_group) - 1
    group_s, group_y = sorted_s[new_group], sorted_y[new_group]
    # One thread: these fits are small, and on a busy machine the libraries' threads mostly spin.
    with one_thread():
        for train, test in splitter.split(np.zeros(len(s)), y):
            mass = np.bincount(group[train], weights=w[train], minlength=len(group_s))
            held = mass > 0
            for m in tried:
                fitted = _fit_collapsed(m, group_s[held], group_y[held], mass[held])
                oof[m][test] = fitted(s[test])
    losses = {m: (oof[m] - y) ** 2 for m in tried}
    best = min(tried, key=lambda m: float(np.average(losses[m], weights=w)))
    candidates = [
        Candidate(m, float(np.average(losses[m], weights=w)), _paired_se(losses[m] - losses[best], w)) for m in tried
    ]
    limit = {c.method: c.brier - c.se_vs_best for c in candidates}
    best_brier = float(np.average(losses[best], weights=w))
    kept = next(m for m in tried if limit[m] <= best_brier)
    with one_thread():
        kept_map = fit_calibrator(kept, s, y, w)
    return Calibration(
        calibrator=kept_map,
        candidates=candidates,
        ece=expected_calibration_error(oof[kept], y, w),
        n=len(s),
        folds=folds,
        out_of_fold=oof[kept],
    )


def expected_calibration_error(
    probabilities: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None, *, bins: int = ECE_BINS
) -> float:
    """Weighted mean of ``|mean probability - observed rate|`` over equal-mass bins of the probabilities."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(positive, dtype=float)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=float)
    if len(p) == 0 or w.sum() <= 0:
        return math.nan
    order = np.argsort(p, kind="stable")
    p, y, w = p[order], y[order], w[order]
    share = np.cumsum(w) / w.sum()
    which = np.minimum((share * bins - 1e-9).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        weight = float(w[inside].sum())
        if weight > 0:
            total += weight * abs(float(np.average(p[inside] - y[inside], weights=w[inside])))
    return total / float(w.sum())


def _collapse(s: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the same score and class as one weighted row: the same fit, far fewer rows for rounded scores."""
    if len(s) < 2:
        return s, y, w
    order = np.lexsort((y, s))
    s, y, w = s[order], y[order], w[order]
    starts = np.flatnonzero(np.concatenate([[True], (np.diff(s) != 0) | (np.diff(y.astype(np.int8)) != 0)]))
    return s[starts], y[starts], np.add.reduceat(w, starts)


def _paired_se(difference: np.ndarray, w: np.ndarray) -> float:
    """Standard error of a weighted mean of per-row loss differences (zero for the best against itself)."""
    mean = float(np.average(difference, weights=w))
    var = float(np.average((difference - mean) ** 2, weights=w))
    return math.sqrt(var / len(difference)) if len(difference) > 1 else 0.0


def _platt_input(scores: np.ndarray, on_logit: bool) -> np.ndarray:
    if not on_logit:
        return scores
    p = np.clip(scores, _LOGIT_CLIP, 1 - _LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _clip_rate(rate: float) -> float:
    return min(max(rate, _LOGIT_CLIP), 1 - _LOGIT_CLIP)
