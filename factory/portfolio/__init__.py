"""Portfolios: per-instrument bundles traded as one book (``task=portfolio``, docs/portfolios.md).

:mod:`~factory.portfolio.risk` (covariance shrinkage, risk contributions, ERC),
:mod:`~factory.portfolio.sizing` (causal weights from past returns on a common grid),
:mod:`~factory.portfolio.book` (a book's parameters and its simulation through the engine),
:mod:`~factory.portfolio.sources` (bundles, their bars, decisions and periods),
:mod:`~factory.portfolio.optimize` (Optuna on the validation period),
:mod:`~factory.portfolio.report` (the report) and :mod:`~factory.portfolio.store`
(``portfolio.yaml``, versioned beside the registry). Sits above the simulation, bundles and
the registry, below the tasks.
"""
