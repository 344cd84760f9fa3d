"""Argument types of ``python -m backend segment``: --bbox, --bands, --gsd."""

from __future__ import annotations

import argparse

__all__ = ["parse_bands", "parse_bbox", "parse_gsd"]


def parse_bbox(value: str) -> tuple[float, float, float, float]:
    """``MINX,MINY,MAXX,MAXY`` (commas or spaces) -> 4 floats."""
    parts = [p.strip() for p in value.replace(" ", ",").split(",") if p.strip()]
    try:
        numbers = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--bbox {value!r} must be 4 numbers MINX,MINY,MAXX,MAXY"
        ) from None
    if len(numbers) != 4:
        raise argparse.ArgumentTypeError(f"--bbox {value!r} must be 4 numbers MINX,MINY,MAXX,MAXY")
    return numbers  # type: ignore[return-value]


def parse_bands(value: str) -> tuple[int, ...]:
    """``B,B,B`` -> 1-based band numbers."""
    try:
        return tuple(int(p) for p in value.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--bands {value!r} must be 1 or 3 band numbers, e.g. 1,2,3 or 4,3,2"
        ) from None


def parse_gsd(value: str) -> float | str | None:
    """``auto`` | ``native`` | metres per pixel."""
    if value in ("auto", "native"):
        return None if value == "native" else "auto"
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--gsd {value!r} must be metres per pixel (e.g. 0.3), 'native' or 'auto'"
        ) from None
    return number
