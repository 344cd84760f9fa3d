"""Blending tiles into the streaming accumulator (numpy only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError


def _shift_up(acc: np.ndarray, n: int) -> None:
    """Drop the first ``n`` rows of ``acc``, move the rest up and zero the freed rows.

    Copies in row chunks no taller than ``n`` so source and destination never overlap and
    numpy needs no temporary copy (the kept rows can be almost the whole buffer).
    """
    keep = acc.shape[0] - n
    step = max(1, min(n, 64))
    for i in range(0, keep, step):
        j = min(i + step, keep)
        acc[i:j] = acc[n + i : n + j]
    acc[max(keep, 0) :] = 0.0


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of every run of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _accumulate(
    acc: np.ndarray,
    prob: np.ndarray,
    rows: tuple[np.ndarray, tuple[int, int, int]],
    cols: tuple[np.ndarray, tuple[int, int, int]],
    scratch: np.ndarray,
) -> None:
    """``acc += prob * row_w[:, None] * col_w[None, :]``, touching only the ramps twice.

    The weights are 1 except in the ramps at the tile's borders, so the tile is split in 3 x 3
    parts: the centre is a plain add, the borders are multiplied first (in ``scratch``).
    """
    (row_w, (h, r_in, r_out)), (col_w, (w, c_in, c_out)) = rows, cols
    if r_in + r_out > h or c_in + c_out > w:  # ramps overlap (tiny tiles): weight everything
        tmp = np.multiply(prob, row_w[:, None], out=scratch[:h, :w])
        tmp *= col_w[None, :]
        acc += tmp
        return
    row_parts = ((0, r_in, True), (r_in, h - r_out, False), (h - r_out, h, True))
    col_parts = ((0, c_in, True), (c_in, w - c_out, False), (w - c_out, w, True))
    for r0, r1, row_ramp in row_parts:
        if r1 <= r0:
            continue
        for c0, c1, col_ramp in col_parts:
            if c1 <= c0:
                continue
            src = prob[r0:r1, c0:c1]
            dst = acc[r0:r1, c0:c1]
            if not row_ramp and not col_ramp:
                dst += src
                continue
            tmp = scratch[r0:r1, c0:c1]
            if row_ramp:
                np.multiply(src, row_w[r0:r1, None], out=tmp)
                if col_ramp:
                    tmp *= col_w[None, c0:c1]
            else:
                np.multiply(src, col_w[None, c0:c1], out=tmp)
            dst += tmp


def _check_prob(prob: Any, tile_px: int) -> np.ndarray:
    prob = np.asarray(prob)
    if prob.shape != (tile_px, tile_px):
        raise InputError(
            f"segmenter returned probabilities of shape {prob.shape} for a "
            f"({tile_px}, {tile_px}, 3) image; predict() must return (H, W)"
        )
    if prob.dtype != np.float32:
        prob = prob.astype(np.float32)
    if not prob.size:
        return prob
    # two passes, no temporary: min and max are NaN when any value is, +-inf when any is
    low, high = float(prob.min()), float(prob.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise InputError(
            f"segmenter returned {int(np.size(prob) - np.isfinite(prob).sum())} non-finite "
            "probabilities (NaN/inf) for one tile; the weights are damaged or the device's "
            "arithmetic failed: re-download the checkpoint or try --device cpu"
        )
    # contract: values in [0, 1]; clip (a copy) only when a segmenter breaks it
    if low < 0.0 or high > 1.0:
        prob = np.clip(prob, 0.0, 1.0)
    return prob
