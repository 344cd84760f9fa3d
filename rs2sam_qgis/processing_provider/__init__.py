"""Processing provider ``rs2sam`` with the ``segmentbytext`` algorithm (no GUI code here)."""
