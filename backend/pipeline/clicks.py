"""Clicks in map coordinates: parsing, the ``clicks`` field, and which tile sees which click.

A click is a point in the raster's CRS with a sign: positive ("this belongs to the answer")
or negative ("this does not"). Each model tile that contains a click is predicted with the
clicks inside it next to the text (``Segmenter.predict_clicks``); the other tiles see the text
alone. The clicks are stored with every polygon (field ``clicks``, :func:`format_clicks`) so a
refined answer can be reproduced with ``--points``.

No torch; rasterio/affine only through the plan's transform.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    from .plan import RunPlan

__all__ = ["Click", "TileClicks", "format_clicks", "parse_clicks", "parse_point", "read_points"]


@dataclass(frozen=True)
class Click:
    """One click: ``(x, y)`` in the raster's CRS, positive or negative."""

    x: float
    y: float
    positive: bool = True

    def __str__(self) -> str:
        return f"{self.x:.10g},{self.y:.10g},{'+' if self.positive else '-'}"


def parse_point(text: str) -> Click:
    """``"X,Y"``, ``"X,Y,+"`` or ``"X,Y,-"`` -> :class:`Click` (positive by default).

    Raises:
        InputError: Anything else, with the expected form.
    """
    parts = [p.strip() for p in str(text).split(",")]
    sign = "+"
    if len(parts) == 3:
        sign = parts.pop()
    try:
        if len(parts) != 2 or sign not in ("+", "-", "pos", "neg"):
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise InputError(f"point {text!r} must be X,Y or X,Y,+ or X,Y,- (numbers in the "
                         "raster's CRS; + = belongs to the answer, - = does not)") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InputError(f"point {text!r} has a coordinate that is not a finite number")
    return Click(x, y, sign in ("+", "pos"))


def parse_clicks(text: str) -> list[Click]:
    """The ``clicks`` field back into clicks: ``"x,y,+;x,y,-"`` ('' = none)."""
    return [parse_point(p) for p in str(text).split(";") if p.strip()]


def format_clicks(clicks: Sequence[Click]) -> str:
    """The ``clicks`` field: ``"x,y,+;x,y,-"`` in click order."""
    return ";".join(str(c) for c in clicks)


def read_points(path: str | os.PathLike[str]) -> list[Click]:
    """Clicks from a file: a GeoJSON of Point features, or text lines ``X,Y[,+|-]``.

    GeoJSON points are positive unless a property ``positive`` is false or ``label`` is
    0 / ``"-"``. Text files may hold blank lines and ``#`` comments.

    Raises:
        InputError: Missing file, unreadable content or a bad line (with its number).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--points file {str(p)!r} does not exist")
    text = p.read_text(encoding="utf-8", errors="replace")
    if p.suffix.lower() in (".geojson", ".json"):
        return _geojson_points(text, p)
    clicks = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            clicks.append(parse_point(line))
        except InputError as err:
            raise InputError(f"{p}, line {n}: {err}") from None
    return clicks


def _geojson_points(text: str, p: Path) -> list[Click]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"--points file {str(p)!r} is not valid GeoJSON: {err}") from None
    feats = data.get("features", [data]) if isinstance(data, dict) else []
    clicks = []
    for k, feat in enumerate(feats):
        geom = (feat or {}).get("geometry") or {}
        if geom.get("type") != "Point":
            raise InputError(f"{p}: feature {k} is a {geom.get('type')!r}, not a Point")
        props = feat.get("properties") or {}
        label = props.get("label", 1)
        positive = bool(props.get("positive", True)) and label not in (0, "0", "-", "neg")
        x, y = geom["coordinates"][:2]
        clicks.append(Click(float(x), float(y), positive))
    return clicks


class TileClicks:
    """Which clicks each model tile of a run sees, in the tile's pixel coordinates.

    Args:
        plan: The run's plan (raster transform, working-grid scale).
        clicks: Clicks in the raster CRS.

    Raises:
        InputError: A click outside the raster, or outside the processed extent.
    """

    def __init__(self, plan: RunPlan, clicks: Sequence[Click]) -> None:
        info, window = plan.info, plan.window
        inverse = ~info.transform
        self.clicks = tuple(clicks)
        self._work: list[tuple[float, float, bool]] = []  # (row, col) on the working grid
        for c in self.clicks:
            col, row = inverse @ (c.x, c.y)
            if not (0 <= col <= info.width and 0 <= row <= info.height):
                raise InputError(f"point {c} lies outside the raster ({info.name}); click on "
                                 "the raster's pixels")
            if not (window.col_off <= col <= window.col_off + window.width
                    and window.row_off <= row <= window.row_off + window.height):
                raise InputError(f"point {c} lies outside the processed extent; click inside "
                                 "the extent of the answer (or widen the extent)")
            self._work.append((row / plan.grid.scale_y, col / plan.grid.scale_x, c.positive))

    def __bool__(self) -> bool:
        return bool(self.clicks)

    def in_tile(self, row0: int, col0: int, height: int, width: int
                ) -> list[tuple[float, float, bool]]:
        """``(column, row, positive)`` of the clicks inside a tile, relative to its corner.

        The tile covers working rows ``[row0, row0 + height)`` and columns
        ``[col0, col0 + width)``.
        """
        return [(c - col0, r - row0, pos) for r, c, pos in self._work
                if row0 <= r <= row0 + height and col0 <= c <= col0 + width]


def clicks_segmenter_check(segmenter: Any) -> None:
    """Refuse clicks for a segmenter without ``predict_clicks`` (a clear message)."""
    if not callable(getattr(segmenter, "predict_clicks", None)):
        raise InputError(f"segmenter {getattr(segmenter, 'name', type(segmenter).__name__)!r} "
                         "takes no clicks; use an RS2-SAM 2 checkpoint (or drop the points)")
