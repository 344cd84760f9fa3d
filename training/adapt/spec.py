"""What an adaptation run is given (:class:`AdaptSpec`) and the checks made before any work."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backend.errors import InputError

__all__ = ["AdaptSpec", "ProgressFn", "check_output", "check_spec"]

ProgressFn = Callable[[str, float, str], None]
"""``progress(stage, fraction 0-1 of the whole run, text)``; stages: ``sampling``,
``validating``, ``training``, ``saving``."""

CHECKPOINT_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class AdaptSpec:
    """Inputs of ``python -m training adapt`` (and of the plugin's "Teach" actions).

    Attributes:
        rasters: One or more GDAL-readable rasters showing the examples.
        examples: Vector file of example polygons (any CRS; reprojected).
        out: Output ``.safetensors`` (must not exist unless ``overwrite``; never an input).
        text: One text for every example (or ``text_field``).
        text_field: Attribute holding each example's text.
        layer: Layer of ``examples`` (None = the first).
        fids: Only these feature ids (the selected features); None = all.
        labelled_area: Vector file of the area that is *fully* labelled: inside it, what no
            example covers is background. Without it background is sampled only away from the
            examples (weaker; the report says so).
        base: Base checkpoint; None = the bundled default weights.
        config: Registry name of a random-init base instead (tests: ``test-tiny``).
        budget_s: Wall-clock budget of the whole run in seconds (default 5 minutes).
        max_steps: Stop after this many optimiser steps (0 = by the budget only; tests use it
            for determinism).
        gsd_m: Working resolution in m/px; None = the base model's own for the taught concept.
        holdout_fraction: Share of the examples' area held out (a strip at one end).
        batch_size: Samples per optimiser step.
        lr: Peak learning rate (AdamW, cosine over the budget).
        keep_share: Share of the samples that keep the other concepts (the base model's
            answers for other texts on the same tiles: no forgetting); 0 = off.
        max_tiles: Training tiles per raster.
        seed: Seeds tile placement, augmentation and shuffling.
        threads: torch CPU threads (None = leave as is).
        device: ``auto`` | ``cpu`` | ``cuda`` ...
        overwrite: Replace an existing ``out``.
        expect_architecture: Refuse a base of another architecture (e.g. ``rs2sam2``).
        scoped: Store the adaptation scoped to the taught texts: the checkpoint holds the
            parent's weights too and answers every other text with them (no forgetting by
            construction; twice the file size). False = the adapted weights answer all texts.
    """

    rasters: tuple[str, ...]
    examples: str
    out: str
    text: str | None = None
    text_field: str | None = None
    layer: str | None = None
    fids: tuple[int, ...] | None = None
    labelled_area: str | None = None
    base: str | None = None
    config: str | None = None
    budget_s: float = 300.0
    max_steps: int = 0
    gsd_m: float | None = None
    holdout_fraction: float = 0.25
    batch_size: int = 2
    lr: float = 5e-4
    keep_share: float = 0.3
    max_tiles: int = 32
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"
    overwrite: bool = False
    expect_architecture: str | None = None
    scoped: bool = True


def _positive(value: float, name: str, fix: str) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be > 0, got {value!r}; {fix}")


def check_spec(spec: AdaptSpec) -> None:
    """Check the plain values of ``spec`` (files are checked where they are read).

    Raises:
        InputError: A bad value (the message names it and the fix).
        OutputError: A bad output path.
    """
    if not spec.rasters:
        raise InputError("no raster given; pass the raster(s) the examples were drawn on")
    for raster in spec.rasters:
        if not str(raster).startswith("/vsi") and not Path(raster).is_file():
            raise InputError(f"raster {str(raster)!r} does not exist; give a GeoTIFF or any "
                             "GDAL raster")
    _positive(spec.budget_s, "the time budget (--minutes)", "give a few minutes, e.g. 5")
    if spec.max_steps < 0:
        raise InputError(f"max_steps must be >= 0, got {spec.max_steps}")
    if spec.gsd_m is not None:
        _positive(spec.gsd_m, "--gsd", "give the working resolution in m/px, e.g. 1.0")
    if not 0.05 <= spec.holdout_fraction <= 0.5:
        raise InputError(f"the hold-out fraction must be in [0.05, 0.5], got "
                         f"{spec.holdout_fraction!r}")
    if spec.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {spec.batch_size}")
    _positive(spec.lr, "--lr", "e.g. 2e-4")
    if not 0.0 <= spec.keep_share < 1.0:
        raise InputError(f"--keep-share must be in [0, 1), got {spec.keep_share!r}")
    if spec.max_tiles < 1:
        raise InputError(f"--max-tiles must be >= 1, got {spec.max_tiles}")
    inputs = [*spec.rasters, spec.examples, spec.labelled_area or "", spec.base or ""]
    check_output(spec.out, inputs, overwrite=spec.overwrite)


def check_output(out: str | os.PathLike[str], inputs: list[str], *, overwrite: bool) -> Path:
    """The adapted checkpoint's path, by the project's output rule (:mod:`backend.outputs`).

    ``.safetensors``, a writable existing folder, never one of the inputs (links, case, inode),
    no existing file unless ``overwrite``.

    Raises:
        OutputError: The path breaks the rule (the message names it and the fix).
    """
    from backend.outputs import check_output_file

    return check_output_file(out, inputs=[i for i in inputs if i], suffixes=(CHECKPOINT_SUFFIX,),
                             overwrite=overwrite)
