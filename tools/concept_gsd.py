"""Per-concept working resolution (m/px) the model saw, from objects of known size.

    .venv/bin/python tools/concept_gsd.py [--set data_gen/packed/nwpu] [--format packed]

For every NWPU class with a typical physical length (``REFERENCE_LENGTH_M``), the median long
side (px) of its single-target masks at the network input (the whole image resized to
``--size`` px, as training does) gives the ground resolution at which training showed it:
``gsd = length / median px``. Classes without a typical size (ships, tanks, harbours, bridges)
and the Dubai land-cover classes (source resolution not stated, about 0.5-1 m, seen at about
1-2 m/px after the 2x shrink) get ``--default``. The printed YAML goes into a training config's
``inference.gsd_m_by_concept`` (stored in the checkpoint's metadata, key ``inference``).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np

# Typical lengths (m) of what the NWPU masks outline. Rough on purpose: the zoom augmentation
# shows every concept at 0.5-2x its median size, so a factor of 1.2 either way does not matter.
REFERENCE_LENGTH_M = {
    "vehicle": 4.5,  # a car
    "airplane": 40.0,  # narrow-body airliners (35-45 m long / wide)
    "tennis_court": 34.0,  # 23.8 m court plus the run-off the surface covers
    "basketball_court": 30.0,  # 28 m court plus run-off
    "baseball_diamond": 40.0,  # the dirt infield the masks outline
    "ground_track_field": 176.0,  # outer length of a 400 m track
}
DUBAI_CLASSES = ("building", "land", "road", "vegetation", "water")


def main() -> None:
    """CLI entry point: prints a table and the YAML mapping."""
    from training.data.datasets import open_dataset

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", default="data_gen/packed/nwpu", help="the NWPU set (any layout)")
    p.add_argument("--format", default="packed", help="packed | refsegrs")
    p.add_argument("--size", type=int, default=256, help="network input side (px)")
    p.add_argument("--default", type=float, default=1.0, help="m/px for the other concepts")
    a = p.parse_args()

    ds = open_dataset(a.format, a.set, "train")
    long_px: dict[str, list[float]] = defaultdict(list)
    seen: set[str] = set()
    for k, rec in enumerate(ds.records):
        if rec.meta.get("n_targets") != 1 or rec.sample_id in seen:
            continue
        seen.add(rec.sample_id)
        mask = ds[k].mask
        ys, xs = np.nonzero(mask)
        h, w = mask.shape
        long_px[rec.meta["target_class"]].append(
            max((ys.max() - ys.min() + 1) * a.size / h, (xs.max() - xs.min() + 1) * a.size / w))
    out: dict[str, float] = {}
    print(f"{'concept':20s} {'n':>5s} {'median px':>9s} {'length m':>8s} {'m/px':>6s}")
    for concept in sorted(long_px):
        med = float(np.median(long_px[concept]))
        ref = REFERENCE_LENGTH_M.get(concept)
        gsd = round(ref / med, 2) if ref else a.default
        out[concept] = gsd
        print(f"{concept:20s} {len(long_px[concept]):5d} {med:9.1f} "
              f"{ref if ref else '-':>8} {gsd:6.2f}")
    for concept in DUBAI_CLASSES:
        out[concept] = a.default
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
