"""The one record every data set yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Sample:
    """One (image, expression, mask) triple.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` bool, True on the referred pixels.
        text: The referring expression (stripped, single spaces).
        sample_id: The data set's id (RefSegRS line id, RRSIS-D ``ref_id``/``sent_id``).
        expr_type: Expression type when the data set records it (``"class"``, ``"position"``,
            ...), else None.
        meta: Anything else the data set knows (source image, category, target ids, ...).
    """

    image: np.ndarray
    mask: np.ndarray
    text: str
    sample_id: str
    expr_type: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
