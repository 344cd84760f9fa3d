"""Screenshot of a refined answer in real QGIS (Xvfb): docs/img/refine_buildings.png.

Runs ``tests/qgis/refine_shot.py``: "the buildings" on the SpaceNet Las Vegas tile, then a
positive click on the footprint the answer covers least and a negative click on its largest
false part, as real mouse events on the canvas; writes the PNG and a JSON with the IoU
against the three footprints before and after the clicks.

Usage::

    python tools/refine_screenshot.py --out docs/img/refine_buildings.png [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess  # nosec B404 - starts xvfb-run with a fixed argument list
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--checkpoint", default="", help="default: the bundled weights")
    args = parser.parse_args(argv)
    env = {**os.environ, "RS2SAM_REFINE_SHOT": str(args.out.resolve()),
           "RS2SAM_REFINE_CKPT": str(Path(args.checkpoint).resolve()) if args.checkpoint else "",
           "QT_QPA_PLATFORM": "offscreen"}
    cmd = ["xvfb-run", "-a", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           str(ROOT / "tests" / "qgis" / "refine_shot.py")]
    status = subprocess.call(cmd, cwd=ROOT, env=env)  # nosec B603 - fixed command
    if status == 0:  # a 256-colour palette that keeps the markers' colours (about 4x smaller)
        from PIL import Image

        with Image.open(args.out) as image:
            rgb = image.convert("RGB")
        rgb.quantize(colors=256, method=Image.Quantize.FASTOCTREE,
                     dither=Image.Dither.NONE).save(args.out, optimize=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
