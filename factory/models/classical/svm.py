"""RBF support-vector machine made scalable: Nystroem features + a linear SVM + Platt scaling.

A kernel ``SVC`` costs O(n^2) memory/time and is unusable on ~100k bars, so the RBF kernel
is approximated by :class:`~sklearn.kernel_approximation.Nystroem` (``n_components``
landmark rows drawn from the training data) and a ``LinearSVC`` (squared hinge, one-vs-rest,
sample weights, primal solver) is trained on those features: an RBF SVM at linear cost.

SVMs give margins, not probabilities, so a multinomial logistic calibrator (Platt-style) is
fitted on margins of rows the SVM did not see: the last ``calibration_fraction`` of each of
five contiguous chunks of the training rows (rows are ordered by symbol, then time, so the
chunk tails span every symbol and period). One SVM fit in all (an out-of-fold scheme costs
k+1 fits, 4-5x the time on 30k rows). Only training rows are used; the validation set is
unused (no early stopping). If the calibration slice lacks a class the SVM saw, the
calibrator falls back to in-sample margins. Zero-weight rows are dropped first (liblinear
would drop them silently and could lose a class). A scikit-learn classifier
(:class:`~factory.models.base.TabularClassifier`); ``eval_set`` is not used. Saved as arrays
in one ``model.npz`` (loaded with ``allow_pickle=False``) plus a small JSON state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from factory.dataset import place_columns
from factory.errors import FactoryError
from factory.models.base import TabularClassifier, one_class_error


def _margins(svc, Z: np.ndarray) -> np.ndarray:
    d = svc.decision_function(Z)
    return d.reshape(len(Z), -1)


def _calibration_split(n: int, fraction: float, chunks: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Rows for the SVM and for the calibrator: the tail ``fraction`` of each of ``chunks``
    contiguous chunks is held out. Rows arrive ordered by (symbol, time), so a single tail
    would calibrate on the last symbol only; chunk tails cover every symbol and period."""
    fit, cal = [], []
    for part in np.array_split(np.arange(n), chunks):
        cut = len(part) - int(round(len(part) * fraction))
        fit.append(part[:cut])
        cal.append(part[cut:])
    return np.concatenate(fit), np.concatenate(cal)


def _linear(est, coef, intercept, classes):
    est.coef_ = np.asarray(coef, np.float64)
    est.intercept_ = np.asarray(intercept, np.float64)
    est.classes_ = np.asarray(classes, np.int64)
    est.n_features_in_ = est.coef_.shape[1]
    return est


class SVMModel(TabularClassifier):
    family = "classical"
    scaling = "standard"
    # scikit-learn's check_estimator: checks that cannot apply, each with its reason
    sklearn_expected_failures = {
        "check_sample_weight_equivalence_on_dense_data":
            "Nystroem landmarks and the calibration slices are drawn from rows, not weights",
    }

    def __init__(
        self,
        n_components: int = 256,
        gamma: float | None = None,
        C: float = 1.0,
        tol: float = 1e-3,
        max_iter: int = 1000,
        calibration_fraction: float = 0.2,
        random_state: int = 42,
    ) -> None:
        self.n_components = n_components
        self.gamma = gamma
        self.C = C
        self.tol = tol
        self.max_iter = max_iter
        self.calibration_fraction = calibration_fraction
        self.random_state = random_state

    def _nystroem(self, n_components: int):
        from sklearn.kernel_approximation import Nystroem

        return Nystroem(kernel="rbf", gamma=self.gamma, n_components=n_components,
                        random_state=self.random_state)

    def _svc(self):
        from sklearn.svm import LinearSVC

        return LinearSVC(C=self.C, loss="squared_hinge", dual="auto", tol=self.tol,
                         max_iter=self.max_iter, random_state=self.random_state)

    @staticmethod
    def _calibrator():
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000)

    def _fit_encoded(self, X, y, sample_weight, eval_set) -> None:
        if not 0.0 < self.calibration_fraction < 1.0:
            raise FactoryError(
                f"SVMModel: calibration_fraction={self.calibration_fraction}; need 0 < f < 1"
            )
        X = np.asarray(X, np.float64)
        w = np.ones(len(y)) if sample_weight is None else sample_weight
        keep = w > 0  # liblinear silently drops zero-weight rows (and with them a class)
        X, y, w = X[keep], y[keep], w[keep]
        if len(np.unique(y)) < 2:
            raise one_class_error("SVMModel", self.classes_[np.unique(y)])
        self.nystroem_ = self._nystroem(min(self.n_components, len(X))).fit(X)
        Z = self.nystroem_.transform(X)
        fit_rows, cal_rows = _calibration_split(len(y), self.calibration_fraction)
        if len(np.unique(y[fit_rows])) < 2:
            fit_rows, cal_rows = np.arange(len(y)), np.arange(0)
        self.svc_ = self._svc().fit(Z[fit_rows], y[fit_rows], sample_weight=w[fit_rows])
        self.n_iter_ = int(self.svc_.n_iter_)
        if len(cal_rows) == 0 or not set(self.svc_.classes_) <= set(y[cal_rows]):
            cal_rows = fit_rows  # too little data for a held-out calibration slice
        self.calibrator_ = self._calibrator().fit(
            _margins(self.svc_, Z[cal_rows]), y[cal_rows], sample_weight=w[cal_rows]
        )

    def _predict_encoded(self, X) -> np.ndarray:
        margins = _margins(self.svc_, self.nystroem_.transform(np.asarray(X, np.float64)))
        proba = self.calibrator_.predict_proba(margins)
        return place_columns(proba, self.calibrator_.classes_, len(self.classes_))

    def feature_importance(self) -> None:
        return None

    def native_state(self) -> dict:
        return {**self._base_state(), "n_components": int(len(self.nystroem_.components_)),
                "n_iter": self.n_iter_}

    def save_native(self, path: Path) -> list[str]:
        nys, svc, cal = self.nystroem_, self.svc_, self.calibrator_
        np.savez(
            Path(path) / "model.npz",
            nystroem_components=nys.components_, nystroem_normalization=nys.normalization_,
            nystroem_component_indices=nys.component_indices_,
            svc_coef=svc.coef_, svc_intercept=svc.intercept_, svc_classes=svc.classes_,
            cal_coef=cal.coef_, cal_intercept=cal.intercept_, cal_classes=cal.classes_,
        )
        return ["model.npz"]

    @classmethod
    def load_native(cls, path: Path, params: dict, state: dict) -> SVMModel:
        model = cls(**params)
        with np.load(Path(path) / "model.npz", allow_pickle=False) as a:
            a = dict(a)
        nys = model._nystroem(int(state["n_components"]))
        nys.components_ = a["nystroem_components"]
        nys.normalization_ = a["nystroem_normalization"]
        nys.component_indices_ = a["nystroem_component_indices"]
        nys.n_features_in_ = int(state["n_features_in"])
        model.nystroem_ = nys
        model.svc_ = _linear(model._svc(), a["svc_coef"], a["svc_intercept"], a["svc_classes"])
        model.calibrator_ = _linear(model._calibrator(), a["cal_coef"], a["cal_intercept"],
                                    a["cal_classes"])
        model._load_base_state(state)
        model.n_iter_ = int(state["n_iter"])
        return model
