"""Ensembles: combining the class probabilities of several base models.

Every combiner eats the same inputs, so the experiment can swap them by config:

* ``P``: out-of-fold (or held-out) probabilities of ``m`` base models, shape ``(n, m, 3)``,
  columns in :data:`factory.dataset.CLASSES` order (p_short, p_flat, p_long);
* ``y``: class indices 0/1/2; ``sample_weight``: optional, ``(n,)``;
* ``R``: optional regime features ``(n, r)`` (ndarray or DataFrame), read only by learners with
  ``needs_regimes = True``.

and exposes ``fit(P, y, sample_weight=None, R=None)``, ``predict_proba(P, R=None) -> (n, 3)``,
``model_weights()`` (one non-negative number per base model, summing to 1, for reports),
``describe(names)`` and a JSON-able ``state()`` / ``from_state(state)`` (no pickle).

Each combiner is one class plus one YAML in ``conf/ensemble/combiner/`` (a ``_partial_``
node): adding one touches nothing else. Modules: :mod:`~factory.ensemble.predictor` (the
:class:`EnsemblePredictor` that ``conf/ensemble/*.yaml`` builds: base models + combiner),
:mod:`~factory.ensemble.voting` (soft / hard voting), :mod:`~factory.ensemble.meta_learners`
(stacking / blending learners), :mod:`~factory.ensemble.regime` (the regime-gated mixture),
:mod:`~factory.ensemble.calibration` (per-model isotonic / Platt),
:mod:`~factory.ensemble.common` (validation, features, the simplex-weight optimiser),
:mod:`~factory.ensemble.diversity` (correlation, disagreement, ablation) and
:mod:`~factory.ensemble.reports` (what an ensemble run reports).
"""
