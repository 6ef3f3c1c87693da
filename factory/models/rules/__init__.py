"""Rule-based models: trading rules written as scikit-learn classifiers, so a rule is trained,
bundled, backtested, simulated and reported like any learned model (the baseline a model
must beat). ``ibs``: internal bar strength with an RSI(2) filter and a volume gate."""
