"""factory's Hydra Ray launcher: ``hydra/launcher=ray`` runs multirun and sweep jobs as Ray tasks.

Same config shape as hydra-ray-launcher (``hydra.launcher.ray.init`` / ``.remote``); why the
project ships its own thin launcher is in docs/scaling_out.md.
"""
