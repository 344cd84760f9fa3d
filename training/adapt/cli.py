r"""``python -m training adapt``: adapt a model to your imagery from your polygons.

Example::

    python -m training adapt demo_data/test_tiled.tif --examples water_north.gpkg \
        --text water --labelled-area north_half.gpkg --minutes 5 --threads 2 \
        --out test_tiled_water.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

__all__ = ["add_adapt_parser", "cmd_adapt"]


def add_adapt_parser(sub: Any) -> None:
    """Add the ``adapt`` sub-command to ``python -m training``'s parser."""
    a = sub.add_parser("adapt", help="adapt a model to your imagery from example polygons",
                       description=__doc__.splitlines()[0])
    a.add_argument("rasters", nargs="+", help="raster(s) the examples are drawn on")
    a.add_argument("--examples", required=True, help="vector file of example polygons")
    a.add_argument("--layer", default=None, help="layer of --examples (default: the first)")
    a.add_argument("--text", default=None, help="one text for every example, e.g. 'water'")
    a.add_argument("--text-field", default=None, help="attribute with each example's text")
    a.add_argument("--fids", default=None, help="only these feature ids, e.g. 1,4,7")
    a.add_argument("--labelled-area", default=None,
                   help="polygon(s) inside which every object is drawn (stronger background)")
    a.add_argument("--base", default=None, help="base checkpoint (default: the bundled one)")
    a.add_argument("--config", default=None, help="random-init registry model (tests)")
    a.add_argument("--minutes", type=float, default=5.0, help="time budget (default 5)")
    a.add_argument("--max-steps", type=int, default=0, help="also stop after N steps")
    a.add_argument("--gsd", type=float, default=None,
                   help="working resolution m/px (default: the base's for the concept)")
    a.add_argument("--holdout", type=float, default=0.25,
                   help="share of the examples' area held out for the before/after IoU")
    a.add_argument("--batch-size", type=int, default=2)
    a.add_argument("--lr", type=float, default=5e-4)
    a.add_argument("--keep-share", type=float, default=0.3,
                   help="share of samples that keep the other concepts (0 = off)")
    a.add_argument("--max-tiles", type=int, default=32, help="training tiles per raster")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    a.add_argument("--device", default="cpu")
    a.add_argument("--out", required=True, help="adapted checkpoint (.safetensors)")
    a.add_argument("--all-texts", action="store_true",
                   help="let the adapted weights answer every text (default: only the taught "
                        "ones; the parent's weights, stored too, answer the rest)")
    a.add_argument("--overwrite", action="store_true")
    a.add_argument("--json", action="store_true", help="print the result as one JSON line")


def _fids(text: str | None) -> tuple[int, ...] | None:
    from backend.errors import InputError

    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--fids must be feature ids separated by commas, got {text!r}") from None


def cmd_adapt(args: argparse.Namespace) -> None:
    """Run the adaptation and print its result (raises ``Rs2SamError`` on bad input)."""
    from training.adapt.engine import adapt
    from training.adapt.spec import AdaptSpec

    spec = AdaptSpec(
        rasters=tuple(args.rasters), examples=args.examples, out=args.out, text=args.text,
        text_field=args.text_field, layer=args.layer, fids=_fids(args.fids),
        labelled_area=args.labelled_area, base=args.base, config=args.config,
        budget_s=args.minutes * 60.0, max_steps=args.max_steps, gsd_m=args.gsd,
        holdout_fraction=args.holdout, batch_size=args.batch_size, lr=args.lr,
        keep_share=args.keep_share, max_tiles=args.max_tiles, seed=args.seed,
        threads=args.threads or None, device=args.device, overwrite=args.overwrite,
        scoped=not args.all_texts)

    def progress(stage: str, fraction: float, text: str) -> None:
        if stage != "training":
            print(f"[{100 * fraction:3.0f} %] {text}", file=sys.stderr)

    result = adapt(spec, progress)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(asdict(result), sort_keys=True))
    else:
        print(f"wrote {result.out_path} (weights sha256 {result.weights_sha256[:16]}…)")
        print(result.summary())
