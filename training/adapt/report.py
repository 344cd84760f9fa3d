"""The adaptation's result: provenance stored in the checkpoint, and the summary for the user."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AdaptResult", "examples_sha256", "provenance"]


@dataclass
class AdaptResult:
    """What ``adapt`` returns.

    Attributes:
        out_path: The adapted checkpoint.
        weights_sha256: Its weights' hash.
        before: Hold-out scores of the base (``score_tiles``: ``iou`` x100, ``per_text``).
        after: Hold-out scores of the adapted model.
        texts: The taught texts as the user gave them.
        model_texts: What the model was taught for them (lexicon-mapped).
        examples: Number of example polygons used.
        steps, samples, seconds: Training steps, samples seen, total wall-clock seconds.
        trained: Which parts were trained.
        gsd_m: Working resolution of the tiles (m/px; None = native).
        notes: Warnings for the user (skipped examples, weaker background, ...).
    """

    out_path: str
    weights_sha256: str
    before: dict[str, Any]
    after: dict[str, Any]
    texts: list[str]
    model_texts: list[str]
    examples: int
    steps: int
    samples: int
    seconds: float
    trained: str
    gsd_m: float | None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: hold-out IoU before -> after."""
        return (f"hold-out IoU {self.before['iou']:.1f} % -> {self.after['iou']:.1f} % "
                f"({', '.join(self.texts)}; {self.examples} examples, {self.steps} steps, "
                f"{self.seconds:.0f} s)")


def examples_sha256(items: Sequence[tuple[str, bytes]]) -> str:
    """Hash of the examples used: their texts and geometries (WKB in the raster's CRS)."""
    h = hashlib.sha256()
    for text, wkb in sorted(items):
        h.update(text.encode("utf-8") + b"\0" + wkb + b"\0")
    return h.hexdigest()


def provenance(
    *,
    parent_sha256: str,
    parent_name: str,
    parent_metadata: dict[str, Any],
    result: AdaptResult,
    examples_hash: str,
    budget_s: float,
    labelled_area: bool,
    rasters: Sequence[str],
    seed: int,
    concept_gsd: dict[str, float],
) -> dict[str, Any]:
    """The checkpoint metadata of an adapted model.

    ``adaptation`` holds the provenance; ``inference`` is the parent's, plus the working
    resolution of the taught concepts (so the pipeline runs them at the resolution taught).
    """
    inference = dict(parent_metadata.get("inference") or {})
    by_concept = dict(inference.get("gsd_m_by_concept") or {})
    by_concept.update(concept_gsd)
    inference["gsd_m_by_concept"] = by_concept
    return {
        "adaptation": {
            "parent_sha256": parent_sha256,
            "parent": parent_name,
            "texts": list(result.texts),
            "model_texts": list(result.model_texts),
            "examples_sha256": examples_hash,
            "examples_count": result.examples,
            "budget_s": budget_s,
            "seconds": round(result.seconds, 1),
            "steps": result.steps,
            "samples_seen": result.samples,
            "trained": result.trained,
            "gsd_m": result.gsd_m,
            "holdout_iou_before": result.before["iou"],
            "holdout_iou_after": result.after["iou"],
            "holdout": {"before": result.before, "after": result.after},
            "labelled_area": labelled_area,
            "rasters": [str(r) for r in rasters],
            "seed": seed,
            "notes": list(result.notes),
        },
        "inference": inference,
        "parent_metrics": parent_metadata.get("metrics", {}),
    }
