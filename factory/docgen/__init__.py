"""Generated documentation: tables rendered from conf/, the classes and measured data.

``python -m factory.docgen`` regenerates every generated page (docs/configuration*.md,
docs/models.md, docs/features.md); ``--check`` lists the stale ones and exits 1.
tests/test_generated_docs.py runs the same check. The modules import pipeline classes only
by name (as Hydra does), so this package sits outside the stage ranks of
tests/test_layering.py.
"""
