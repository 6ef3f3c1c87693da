"""Tasks: what ``run.py`` does, chosen with ``task=`` (``conf/task/``).

``train`` (the default) is :func:`factory.experiment.run`; the others work on a bundle or the
registry: ``predict`` (batch or streaming predictions of new bars), ``promote`` /
``rollback`` / ``registry`` (the model registry), and the later ones of wave 2. Each is one
small function ``run(cfg) -> float`` over the same components.
"""
