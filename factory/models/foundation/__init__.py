"""Zero-shot foundation forecasters (Chronos-Bolt, TimesFM) as triple-barrier classifiers.

They read each row's close-price history (``adapter=context``), forecast quantiles of the
next ``horizon`` bars and turn them into class probabilities through the barrier geometry
(:mod:`.geometry`); nothing is trained (:mod:`.zero_shot`).
"""
