"""Bundles: everything needed to go from raw bars to probabilities, with no Phase-1 cache
and no training data.

Every training run writes ``bundle/`` (``conf/outputs``)::

    manifest.json      format version, library versions, what made it, the SHA-256 of every
                       other file (verified on load; a changed byte is refused)
    schema.json        input schema: columns, timeframe, symbols, timezone, sessions, and the
                       instrument specs; the training data range and its fingerprint
    labeling.json      the label's geometry (labeling config, horizon, per-symbol multipliers)
                       and the class order
    features.json      the feature pipeline (registry groups and parameters, ladder, set name),
                       its training-fitted state per symbol (HMM parameters, fracdiff d) and
                       the selected columns in order
    predictor/         the fitted predictor (native model files + adapter.json + manifest;
                       an ensemble: predictor/bases/<name>/ with each base's own
                       features.json, and combiner.json)
    reference.json     training-time reference bins for monitoring (deciles per feature and
                       per class probability)
    metrics.json       the run's metrics
    predictions_test.parquet   the run's test predictions (the promotion gate re-checks them)
    data.json          the data config the model was trained on (for that re-check)

Nothing is pickled. :mod:`~factory.bundle.writer` writes it; :mod:`~factory.bundle.reader`
loads and checks it (hashes, format version, library versions); :mod:`~factory.bundle.predict`
turns bars into the same features and predictions the run computed.
"""
