"""Referring-segmentation data sets: RefSegRS and RRSIS-D layouts, a synthetic set, transforms."""

from __future__ import annotations

from training.data.sample import Sample

__all__ = ["Sample"]
