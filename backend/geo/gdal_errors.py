"""The one-line cause of a failed GDAL/rasterio read, for messages that name it."""

from __future__ import annotations

__all__ = ["gdal_reason"]


def gdal_reason(exc: BaseException) -> str:
    """The most specific one-line cause GDAL gave (rasterio chains it behind a generic one).

    Args:
        exc: The raised error; its ``__cause__``/``__context__`` chain is read (5 links at most).

    Returns:
        One line of at most 200 characters (the error's type name when every text is empty).
    """
    seen: BaseException | None = exc
    lines = []
    while seen is not None and len(lines) < 5:
        text = str(seen).strip()
        if text:
            lines.append(text.splitlines()[0])
        seen = seen.__cause__ or seen.__context__
    specific = [line for line in lines if "See previous exception" not in line]
    return (specific or lines or [type(exc).__name__])[-1][:200]
