"""What the expression builder knows about one image: its instances and their geometry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Instance:
    """One object (NWPU instance) or one connected region (Dubai class component).

    Attributes:
        iid: Instance id, unique within the scene (NWPU: the COCO annotation id).
        cls: Class key (e.g. ``"storage_tank"``).
        mask: ``(H, W)`` bool at the scene's working size.
        area_px: Foreground pixel count of ``mask``.
        centroid: ``(u, v)`` mask centroid, normalised to [0, 1] by width / height.
        bbox: ``(u0, v0, u1, v1)`` normalised extent of the mask.
        geom: Optional shapely geometry in pixel coordinates (used for distances).
        minor: True for specks (tiny components) that count for membership but never alone.
    """

    iid: int
    cls: str
    mask: np.ndarray
    area_px: int
    centroid: tuple[float, float]
    bbox: tuple[float, float, float, float]
    geom: Any = None
    minor: bool = False

    @classmethod
    def from_mask(
        cls, iid: int, class_key: str, mask: np.ndarray, geom: Any = None, minor: bool = False
    ) -> Instance:
        """Build an instance, deriving area, centroid and extent from ``mask`` (pixel centres).

        Args:
            iid: Instance id.
            class_key: Class key.
            mask: ``(H, W)`` bool; may be empty only if ``geom`` is given (tiny objects).
            geom: Shapely geometry in pixel coordinates, the fallback for an empty mask.
            minor: See the class docstring.

        Returns:
            The instance.
        """
        h, w = mask.shape
        rows, cols = np.nonzero(mask)
        if rows.size:
            u, v = (cols.mean() + 0.5) / w, (rows.mean() + 0.5) / h
            bbox = (cols.min() / w, rows.min() / h, (cols.max() + 1) / w, (rows.max() + 1) / h)
        elif geom is not None and not geom.is_empty:
            c = geom.centroid
            u, v = c.x / w, c.y / h
            x0, y0, x1, y1 = geom.bounds
            bbox = (x0 / w, y0 / h, x1 / w, y1 / h)
        else:
            raise ValueError(f"instance {iid} ({class_key}) has neither mask pixels nor geometry")
        return cls(iid, class_key, mask, int(rows.size), (float(u), float(v)),
                   tuple(float(b) for b in bbox), geom, minor)  # type: ignore[arg-type]


@dataclass
class Scene:
    """One working image and everything labelled in it.

    Attributes:
        width: Working width in px.
        height: Working height in px.
        instances: All labelled objects / regions.
        meta: Provenance (source image, crop, scale, flags).
    """

    width: int
    height: int
    instances: list[Instance]
    meta: dict[str, Any] = field(default_factory=dict)

    def of_class(self, cls: str, *, include_minor: bool = True) -> list[Instance]:
        """Instances of one class, in id order."""
        return [i for i in self.instances if i.cls == cls and (include_minor or not i.minor)]

    def classes(self) -> list[str]:
        """Sorted class keys present in the scene."""
        return sorted({i.cls for i in self.instances})

    def by_id(self, iid: int) -> Instance:
        """The instance with id ``iid``."""
        for inst in self.instances:
            if inst.iid == iid:
                return inst
        raise KeyError(iid)

    def union_mask(self, ids: frozenset[int] | set[int]) -> np.ndarray:
        """``(H, W)`` bool union of the given instances' masks."""
        out = np.zeros((self.height, self.width), bool)
        for inst in self.instances:
            if inst.iid in ids:
                out |= inst.mask
        return out
