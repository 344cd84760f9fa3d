"""Measure what the installer dialog would download, per torch build, without installing.

The same check the dialog runs in the background (rs2sam_qgis.installer_check.check_plan): pip's
own settings of the given interpreter, a probe of the build's extra index, and the download
resolved over the indexes' simple API and the wheels' metadata (file sizes as the index lists
them; nothing but index pages and metadata is fetched).

    QT_QPA_PLATFORM=offscreen python tools/measure_install.py cpu pypi cuda \
        [--python /usr/bin/python3] [--platform linux]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    """Print one block per build: sources, reachability, measured size, the largest files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="cpu, cuda, pypi")
    parser.add_argument("--python", default="/usr/bin/python3", help="QGIS's interpreter")
    parser.add_argument("--platform", default=sys.platform)
    parser.add_argument("--numpy-pin", default="numpy>=1.24.4,<2")
    args = parser.parse_args(argv)
    from rs2sam_qgis.deps import DependencyReport
    from rs2sam_qgis.install_plan import backend_plan
    from rs2sam_qgis.installer_check import (
        check_plan,
        describe_size,
        describe_sources,
        describe_unreachable,
    )
    from rs2sam_qgis.installer_sizes import human_bytes

    report = DependencyReport(missing=["torch"], problems=["torch"], numpy_pin=args.numpy_pin)
    for variant in args.variants:
        start = time.perf_counter()
        plan = backend_plan(report, variant, python=args.python, platform=args.platform)
        check = check_plan(plan)
        print(f"== {variant} ({time.perf_counter() - start:.1f} s)")
        print(describe_sources(check))
        for probe in check.unreachable:
            print(describe_unreachable(probe, f"extra index of the {variant} build"))
        print(describe_size(check.estimate))
        if check.estimate is not None:
            for f in sorted(check.estimate.files, key=lambda f: -(f.size or 0))[:6]:
                print(f"   {human_bytes(f.size or 0):>10}  {f.filename}")
        if check.error:
            print("check failed:", check.error)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
