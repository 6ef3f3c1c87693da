"""Forecasting architectures reused as classification backbones.

Modern time-series forecasters (PatchTST, iTransformer, TFT, N-HiTS, ...) are built by
neuralforecast as Lightning modules whose ``forward(windows_batch)`` maps a window to a
forecast. :class:`~factory.models.forecasting.nf_backbone.NeuralForecastNet` wraps any of the
allowed ones as a plain ``nn.Module`` with a classification head, so the shared torch trainer
(not Lightning's loop) trains them like every other network. Adding another neuralforecast
architecture is one YAML under ``conf/model/``; ``nf_capabilities`` holds the allow-list and
the rules that decide how the feature window is fed to each architecture.
"""
