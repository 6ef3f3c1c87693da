"""What a run writes: a configured list of outputs (``conf/outputs/default.yaml``).

Each output is a small class with ``write(result: RunResult) -> None``. The experiment builds
the list before any work (so a bad entry fails first), runs the pipeline once, then hands the
same :class:`~factory.outputs.base.RunResult` to each output in order. An output writes only
what the result holds (a k-fold run's OOF files, an ensemble's reports, a torch model's
history): there are no per-predictor special cases. Drop one with e.g. ``~outputs.plots``;
add your own with a class and one YAML entry.
"""
