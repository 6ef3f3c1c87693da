"""Tabular models: framework fit vs the bare library fit on the same training matrix.

The framework side is exactly what an experiment does: ``build(cfg.model)``,
``build(cfg.adapter)`` and :class:`factory.training.predictor.ModelPredictor` on the default
Phase-1 dataset (``fit_seconds`` = ``model.fit`` alone; ``fit_predict`` also fits the adapter,
transforms and predicts the validation split). The bare side calls the library directly on
the adapter's own train/val matrices (same scaling, weights, labels) with the parameters of
``conf/model/<name>.yaml`` translated by hand, so the ratio shows the framework overhead and
identical validation outputs show it is the same model. The machine line shows the load
the fits ran under.

Threads: both sides run single-threaded by default (``model.n_jobs=1`` and
``threadpoolctl`` limits on OpenMP/BLAS), which gives stable figures on a shared machine:
XGBoost/LightGBM with ``os.cpu_count()`` OpenMP threads slow down 10-50x when the cores are
also busy with other processes. ``FACTORY_BENCH_THREADS=N`` runs both sides with N threads;
``FACTORY_BENCH_THREADS=-1`` keeps the configured ``n_jobs: -1`` (= ``os.cpu_count()``).
Fits shorter than ``REPEAT_BELOW_S`` are timed twice per side (best of 2).
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from threadpoolctl import threadpool_limits

import factory.phase1 as phase1
from factory.config import build
from factory.training.predictor import ModelPredictor
from tests.benchmarks.conftest import table
from tests.conftest import compose_config

pytestmark = pytest.mark.benchmark

MODELS = ["xgboost", "lightgbm", "catboost", "random_forest", "logistic", "svm"]
PROBA = ["p_short", "p_flat", "p_long"]
_ENV_THREADS = os.environ.get("FACTORY_BENCH_THREADS", "1").strip()
AS_CONFIGURED = _ENV_THREADS in ("-1", "all")
THREADS = os.cpu_count() if AS_CONFIGURED else int(_ENV_THREADS)  # n_jobs=-1: os.cpu_count()
WITH_N_JOBS = {"xgboost", "lightgbm", "catboost", "random_forest"}
REPEAT_BELOW_S = 10.0


@dataclass
class Bare:
    seconds: float
    proba: np.ndarray | None  # (n_val, 3), or None (svm: margins only)
    pred: np.ndarray  # predicted class index per validation row
    iters: int
    native: object = None


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bare_xgboost(p, tr, va) -> Bare:
    import xgboost as xgb

    params = {"objective": "multi:softprob", "num_class": 3, "eval_metric": "mlogloss",
              "tree_method": "hist", "eta": p.learning_rate, "max_depth": p.max_depth,
              "min_child_weight": p.min_child_weight, "subsample": p.subsample,
              "colsample_bytree": p.colsample_bytree, "lambda": p.reg_lambda,
              "alpha": p.reg_alpha, "gamma": p.gamma, "max_bin": p.max_bin,
              "nthread": THREADS, "seed": p.random_state}

    def fit():
        dtrain = xgb.DMatrix(tr.X, label=tr.y, weight=tr.weight)
        dval = xgb.DMatrix(va.X, label=va.y, weight=va.weight)
        return xgb.train(params, dtrain, num_boost_round=p.n_estimators,
                         evals=[(dval, "val")], early_stopping_rounds=p.early_stopping_rounds,
                         verbose_eval=False)

    secs, bst = _timed(fit)
    proba = bst.predict(xgb.DMatrix(va.X), iteration_range=(0, bst.best_iteration + 1))
    proba = proba.reshape(len(va), 3).astype(np.float64)
    return Bare(secs, proba, proba.argmax(1), bst.best_iteration + 1)


def bare_lightgbm(p, tr, va) -> Bare:
    import lightgbm as lgb

    params = {"objective": "multiclass", "num_class": 3, "metric": "multi_logloss",
              "learning_rate": p.learning_rate, "num_leaves": p.num_leaves,
              "max_depth": p.max_depth, "min_data_in_leaf": p.min_child_samples,
              "min_sum_hessian_in_leaf": p.min_child_weight, "bagging_fraction": p.subsample,
              "bagging_freq": p.subsample_freq, "feature_fraction": p.colsample_bytree,
              "lambda_l2": p.reg_lambda, "lambda_l1": p.reg_alpha,
              "min_gain_to_split": p.min_split_gain, "max_bin": p.max_bin,
              "deterministic": True, "force_row_wise": True, "verbosity": -1,
              "seed": p.random_state, "num_threads": THREADS}

    def fit():
        dtrain = lgb.Dataset(tr.X, label=tr.y, weight=tr.weight,
                             params={"max_bin": p.max_bin, "verbosity": -1})
        dval = lgb.Dataset(va.X, label=va.y, weight=va.weight, reference=dtrain)
        return lgb.train(params, dtrain, num_boost_round=p.n_estimators, valid_sets=[dval],
                         callbacks=[lgb.early_stopping(p.early_stopping_rounds, verbose=False)])

    secs, bst = _timed(fit)
    proba = np.asarray(bst.predict(va.X, num_iteration=bst.best_iteration), np.float64)
    return Bare(secs, proba, proba.argmax(1), bst.best_iteration)


def bare_catboost(p, tr, va) -> Bare:
    from catboost import CatBoostClassifier, Pool

    kwargs = {"loss_function": "MultiClass", "class_names": [0, 1, 2],
              "iterations": p.n_estimators, "learning_rate": p.learning_rate, "depth": p.depth,
              "l2_leaf_reg": p.l2_leaf_reg, "random_strength": p.random_strength,
              "bootstrap_type": p.bootstrap_type, "border_count": p.border_count,
              "random_seed": p.random_state, "thread_count": THREADS,
              "allow_writing_files": False, "verbose": False}
    if p.bootstrap_type in ("Bernoulli", "MVS", "Poisson"):
        kwargs["subsample"] = p.subsample

    def fit():
        clf = CatBoostClassifier(**kwargs)
        return clf.fit(Pool(tr.X, label=tr.y, weight=tr.weight),
                       eval_set=Pool(va.X, label=va.y, weight=va.weight), use_best_model=True,
                       early_stopping_rounds=p.early_stopping_rounds)

    secs, clf = _timed(fit)
    proba = np.asarray(clf.predict_proba(va.X), np.float64)
    return Bare(secs, proba, proba.argmax(1), clf.tree_count_)


def bare_random_forest(p, tr, va) -> Bare:
    from sklearn.ensemble import RandomForestClassifier

    clf = RandomForestClassifier(n_estimators=p.n_estimators, max_depth=p.max_depth,
                                 min_samples_leaf=p.min_samples_leaf,
                                 max_features=p.max_features, max_samples=p.max_samples,
                                 criterion=p.criterion, n_jobs=THREADS,
                                 random_state=p.random_state)
    secs, clf = _timed(lambda: clf.fit(tr.X, tr.y, sample_weight=tr.weight))
    assert list(clf.classes_) == [0, 1, 2]
    proba = clf.predict_proba(va.X)
    return Bare(secs, proba, proba.argmax(1), len(clf.estimators_))


def bare_logistic(p, tr, va) -> Bare:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=p.C, solver="lbfgs", max_iter=p.max_iter, tol=p.tol,
                             fit_intercept=p.fit_intercept, random_state=p.random_state)
    X = np.asarray(tr.X, np.float64)  # as the framework does (float64 coefficients)
    secs, clf = _timed(lambda: clf.fit(X, tr.y, sample_weight=tr.weight))
    proba = clf.predict_proba(va.X)
    return Bare(secs, proba, proba.argmax(1), int(np.max(clf.n_iter_)))


def bare_svm(p, tr, va) -> Bare:
    """Nystroem RBF features + one LinearSVC on the same rows as the framework's SVM (its
    calibration rows held out); no calibrator: margins, no probabilities."""
    from sklearn.kernel_approximation import Nystroem
    from sklearn.svm import LinearSVC

    from factory.models.classical.svm import _calibration_split

    X = np.asarray(tr.X, np.float64)
    rows, _ = _calibration_split(len(X), p.calibration_fraction)

    def fit():
        nys = Nystroem(kernel="rbf", gamma=p.gamma, n_components=min(p.n_components, len(X)),
                       random_state=p.random_state).fit(X)
        svc = LinearSVC(C=p.C, loss="squared_hinge", dual="auto", tol=p.tol,
                        max_iter=p.max_iter, random_state=p.random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            svc.fit(nys.transform(X[rows]), tr.y[rows], sample_weight=tr.weight[rows])
        return nys, svc

    secs, (nys, svc) = _timed(fit)
    margins = svc.decision_function(nys.transform(np.asarray(va.X, np.float64)))
    pred = svc.classes_[margins.argmax(1)]
    return Bare(secs, None, pred, int(np.max(svc.n_iter_)), native=svc)


BARE = {"xgboost": bare_xgboost, "lightgbm": bare_lightgbm, "catboost": bare_catboost,
        "random_forest": bare_random_forest, "logistic": bare_logistic, "svm": bare_svm}


def framework_iters(name: str, model) -> int:
    return {
        "xgboost": lambda m: m.best_iteration_ + 1,
        "lightgbm": lambda m: m.best_iteration_,
        "catboost": lambda m: m.model_.tree_count_,
        "random_forest": lambda m: len(m.model_.estimators_),
        "logistic": lambda m: int(np.max(m.model_.n_iter_)),
        "svm": lambda m: int(np.max(m.svc_.n_iter_)),
    }[name](model)


def _log_loss(y: np.ndarray, proba: np.ndarray | None) -> float:
    if proba is None:
        return float("nan")
    with warnings.catch_warnings():  # float32 boosters' rows sum to 1 only to ~1e-7
        warnings.filterwarnings("ignore", "The y_prob values do not sum to one")
        return float(log_loss(y, proba, labels=[0, 1, 2]))


@pytest.fixture(scope="module")
def default_dataset(tmp_path_factory):
    """The default config's Phase-1 dataset (built, not cached)."""
    cfg = compose_config(tmp_path_factory.mktemp("models"), "cache=false", tiny=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(phase1, "tqdm", lambda it, **_: it)  # no progress bar in the printout
        ds, _key, _hit = phase1.load_or_build(cfg)
    return ds


def test_bench_tabular_models_vs_bare_library(default_dataset, tmp_path):
    import catboost  # noqa: F401  (imported up front: no import time inside a timing)
    import lightgbm  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import sklearn.kernel_approximation  # noqa: F401
    import sklearn.svm  # noqa: F401
    import xgboost  # noqa: F401

    ds = default_dataset
    y_val = (ds.meta["label"].to_numpy()[ds.rows("val")] + 1).astype(np.int64)
    limits = (contextlib.nullcontext() if AS_CONFIGURED
              else threadpool_limits(limits=THREADS))
    rows, problems = [], []
    with limits:
        for name in MODELS:
            rows.append(_compare(name, ds, y_val, tmp_path, problems))

    n_tr, n_va = len(ds.rows("train")), len(ds.rows("val"))
    mode = ("n_jobs=-1 as configured" if AS_CONFIGURED
            else "model.n_jobs + threadpoolctl limit; FACTORY_BENCH_THREADS to change")
    table(f"2. Tabular models on the default dataset: train {n_tr:,} x {ds.X.shape[1]} "
          f"features, val {n_va:,}; {THREADS} thread(s) ({mode})",
          ["model", "fw fit s", "bare fit s", "fw/bare", "fit_predict s", "iters fw/bare",
           "val acc fw", "val acc bare", "val logloss fw", "val logloss bare", "same model"],
          rows,
          ["fw fit = model.fit inside fit_predict (builds DMatrix/Dataset/Pool like the bare "
           "side); fit_predict = adapter fit + transforms + fit + val prediction",
           f"fits under {REPEAT_BELOW_S:.0f} s: best of 2 per side; longer fits: one run",
           "iters: boosting rounds kept (early stopping) / trees / solver iterations",
           "svm: the framework fits one LinearSVC on 80% of train + a logistic (Platt) "
           "calibrator on the held-out 20%; the bare side is Nystroem + the same LinearSVC "
           "(val acc from raw margins, no log loss); 'same model' compares the final "
           "LinearSVC coefficients",
           "accuracy and log loss unweighted on the validation split"])
    assert not problems, "\n".join(problems)


def _compare(name: str, ds, y_val: np.ndarray, tmp_path, problems: list[str]) -> list:
    """Framework vs bare fit of one model: a table row; failed checks go to ``problems``."""
    threads = [] if AS_CONFIGURED or name not in WITH_N_JOBS else [f"model.n_jobs={THREADS}"]
    cfg = compose_config(tmp_path, "cache=false", f"model={name}", *threads, tiny=False)

    def framework():
        model, adapter = build(cfg.model), build(cfg.adapter)
        t0 = time.perf_counter()
        res = ModelPredictor(model, adapter).fit(ds)
        res.predictions = {"val": res.predict(ds, ds.rows("val"))}
        return res, time.perf_counter() - t0

    res, fp_seconds = framework()
    tr = res.adapter.transform(ds, ds.rows("train"))
    va = res.adapter.transform(ds, ds.rows("val"))
    assert np.array_equal(va.y, y_val)
    bare = BARE[name](cfg.model, tr, va)
    fw_fit, bare_fit = res.fit_seconds_, bare.seconds
    if max(fw_fit, bare_fit) < REPEAT_BELOW_S:
        again, fp_again = framework()
        fw_fit, fp_seconds = min(fw_fit, again.fit_seconds), min(fp_seconds, fp_again)
        bare_fit = min(bare_fit, BARE[name](cfg.model, tr, va).seconds)
    fw_proba = res.predictions["val"][PROBA].to_numpy(np.float64)

    fw_acc = float((fw_proba.argmax(1) == y_val).mean())
    bare_acc = float((bare.pred == y_val).mean())
    fw_ll, bare_ll = _log_loss(y_val, fw_proba), _log_loss(y_val, bare.proba)
    if name == "svm":  # same final LinearSVC: compare its coefficients
        diff = float(np.abs(res.model.svc_.coef_ - bare.native.coef_).max())
        what = "max|d coef|"
    else:
        diff = float(np.abs(fw_proba - bare.proba).max())
        what = "max|d p|"
    row = [name, fw_fit, bare_fit, fw_fit / bare_fit, fp_seconds,
           f"{framework_iters(name, res.model)}/{bare.iters}", fw_acc, bare_acc, fw_ll, bare_ll,
           f"{what} {diff:.1e}"]

    # real checks: sane probabilities, same model as the bare library
    if not (np.isfinite(fw_proba).all() and np.allclose(fw_proba.sum(1), 1.0)):
        problems.append(f"{name}: framework probabilities not finite / not summing to 1")
    if not (0.2 < fw_acc < 1.0 and fw_ll < 2.0):
        problems.append(f"{name}: implausible validation accuracy {fw_acc} / log loss {fw_ll}")
    if diff > 1e-6:
        problems.append(f"{name}: framework and bare outputs differ ({what} = {diff:.3g})")
    if name != "svm" and (fw_acc != bare_acc or abs(fw_ll - bare_ll) > 1e-6):
        problems.append(f"{name}: validation metrics differ: {fw_acc}/{bare_acc}, "
                        f"{fw_ll}/{bare_ll}")
    if name != "svm" and fw_fit / bare_fit > 5:
        problems.append(f"{name}: framework fit {fw_fit / bare_fit:.1f}x the bare library's")
    return row
