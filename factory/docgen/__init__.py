"""Generated documentation: tables rendered from conf/, the classes and measured data.

``python -m factory.docgen`` regenerates every generated page (docs/configuration*.md by
:mod:`.configuration`, docs/models.md by :mod:`.models`, docs/features.md by
:mod:`factory.features.describe`); ``--check`` lists the stale ones and exits 1.
tests/test_generated_docs.py runs the same check. The package reads every stage (the classes
a YAML names are imported by name, as Hydra does), so it sits on the top floor of
tests/test_layering.py.
"""
