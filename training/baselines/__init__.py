"""Baselines for the ablation table of issue 7 (trained by the same trainer)."""
