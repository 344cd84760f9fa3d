"""Text handling between the user and the model (no torch): :mod:`backend.text.lexicon`."""
