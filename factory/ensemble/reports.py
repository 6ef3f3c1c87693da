"""What an ensemble run reports beside the standard outputs.

* ``ensemble_report.csv``: the ensemble and each base model, on validation and test. The
  ensemble predicts only the rows *every* base model predicts (the common rows: sequence
  models lose the first ``seq_len - 1`` rows of each segment, feature sets differ in
  warm-up), so each base model is shown twice, labelled: on the common rows (a like-for-like
  comparison with the ensemble) and on its own rows (what its own run reports). The row
  counts of each are in ``metrics["ensemble"]["rows"]``.
* ``diversity_correlation.csv`` / ``diversity_disagreement.csv``: how differently the base
  models predict the test rows.
* ``metrics["ensemble"]``: method, the combiner's weights and details, ablation (the combiner
  refitted without each base model, scored on the test rows), diversity and the table above.
"""

from __future__ import annotations

import logging

import pandas as pd

from factory.dataset import PROBA_COLUMNS, Dataset, labels_to_index
from factory.ensemble.diversity import ablation, diversity_report
from factory.evaluation.evaluator import SUMMARY_KEYS

log = logging.getLogger(__name__)
SPLITS = ("val", "test")


def _row(metrics_by_split: dict) -> dict:
    return {f"{s}.{k}": metrics_by_split[s].get(k) for s in SPLITS for k in SUMMARY_KEYS}


def ensemble_reports(ens, ds: Dataset, evaluator, predictions: dict) -> tuple[dict, dict]:
    """(tables, metrics blocks) of an ensemble run; see the module docstring."""
    own = {s: ens.base_frames(ds, ds.rows(s)) for s in SPLITS}
    common = {}
    for split in SPLITS:
        rows = ds.rows(split)
        common[split] = ens.align(ds, own[split], rows)
    table = {"ensemble": _row({s: evaluator.evaluate(predictions[s], ds)[0] for s in SPLITS})}
    counts = {s: {"ensemble": len(predictions[s])} for s in SPLITS}
    for k, name in enumerate(ens.base_models):
        on_common, on_own = {}, {}
        for split in SPLITS:
            frame = predictions[split].copy()
            frame[PROBA_COLUMNS] = common[split][1][:, k]
            on_common[split] = evaluator.evaluate(frame, ds)[0]
            on_own[split] = evaluator.evaluate(own[split][name], ds)[0]
            counts[split][name] = len(own[split][name])
        table[f"{name} (common rows)"] = _row(on_common)
        table[f"{name} (own rows)"] = _row(on_own)
    report = pd.DataFrame(table).T
    report.index.name = "model"

    test_rows, P_test = common["test"]
    y_test = labels_to_index(ds.meta["label"].to_numpy()[test_rows])
    diversity = diversity_report(P_test, y_test, ens.base_models)
    P, y, w, R = ens.fit_data_
    ablated = ablation(ens.make_combiner, P, y, ens.base_models, sample_weight=w, R=R,
                       P_eval=P_test, y_eval=y_test, R_eval=ens.regimes(ds, test_rows))
    describe = ens.combiner_.describe(ens.base_models)
    block = {"method": ens.method, "combiner": describe, "base_models": ens.base_models,
             "n_fit_rows": int(ens.n_train_), "rows": counts, "ablation": ablated,
             "diversity": diversity, "base": table}
    cols = [c for c in report.columns if c.split(".")[1] in ("f1_macro", "log_loss", "sharpe")]
    log.info("base models vs %s (%s; rows: %s):\n%s", ens.name, describe["kind"],
             {s: counts[s]["ensemble"] for s in SPLITS},
             report[cols].to_string(float_format=lambda v: f"{v:.4f}"))
    tables = {"ensemble_report": report,
              "diversity_correlation": pd.DataFrame(diversity["correlation"]),
              "diversity_disagreement": pd.DataFrame(diversity["disagreement"])}
    return tables, {"ensemble": block}

