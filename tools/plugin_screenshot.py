"""Screenshot + timings of the plugin in the real QGIS desktop (Xvfb), for docs and reports.

Builds the plugin zip, installs it into a throw-away QGIS profile, starts ``qgis`` under
``xvfb-run`` with ``tests/qgis/desktop_e2e.py`` and runs the given queries through the dock.
Prints the per-query timings (wall, model load, worst delay of a 50 ms GUI timer) as JSON and
saves the main-window screenshot.

Usage::

    python tools/plugin_screenshot.py --raster demo_data/test_tiled.tif \
        --query "the trees" --query "the road" [--model-config test-tiny] \
        [--checkpoint PATH] [--threshold 0.5] --out docs/img/plugin_dock.png \
        [--dock-out D.png --deps-out D.png --attributes-out A.png --installer-out I.png \
         --processing-out P.png]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess  # nosec B404 - starts xvfb-run/qgis with fixed argument lists
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _shrink_png(path: Path) -> None:
    """Re-save a screenshot with a 256-colour palette (about 3x smaller, fine for UI shots)."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
    palette = rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raster", type=Path, required=True)
    parser.add_argument("--query", action="append", required=True)
    parser.add_argument("--model-config", default="", help="developer model, e.g. test-tiny")
    parser.add_argument("--checkpoint", default="")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--extent", default="canvas", choices=["canvas", "layer"])
    parser.add_argument("--size", default="1280x800", help="main window size")
    parser.add_argument("--out", type=Path, help="PNG of the main window")
    parser.add_argument("--dock-out", type=Path, help="PNG of the dock alone")
    parser.add_argument("--deps-out", type=Path, help="PNG of the dock with a missing-package box")
    parser.add_argument("--attributes-out", type=Path, help="PNG of the result's attribute table")
    parser.add_argument("--installer-out", type=Path, help="PNG of the dependency installer")
    parser.add_argument("--processing-out", type=Path, help="PNG of the Processing dialog")
    parser.add_argument("--timeout", type=int, default=600)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="rs2sam_shot_"))
    try:
        zip_path = work / "rs2sam_qgis.zip"
        subprocess.run(  # nosec B603 - fixed argv
            [
                sys.executable,
                str(ROOT / "tools" / "build_plugin.py"),
                "--out",
                str(zip_path),
                "--stage",
                str(work / "stage"),
                "--no-bandit",
            ],
            check=True,
            capture_output=True,
        )
        profiles = work / "profiles"
        plugins = profiles / "profiles" / "default" / "python" / "plugins"
        plugins.mkdir(parents=True)
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(plugins)
        ini = profiles / "profiles" / "default" / "QGIS" / "QGIS3.ini"
        ini.parent.mkdir(parents=True)
        ini.write_text("[PythonPlugins]\nrs2sam_qgis=true\n", encoding="utf-8")
        width, height = (int(v) for v in args.size.split("x"))
        raster = work / args.raster.name  # a copy: QGIS writes .aux.xml files next to rasters
        shutil.copy2(args.raster, raster)
        config = {
            "raster": str(raster),
            "queries": args.query,
            "model_config": args.model_config,
            "checkpoint": args.checkpoint,
            "threshold": args.threshold,
            "extent_mode": args.extent,
            "window_size": [width, height],
            "output_dir": str(work / "results"),
            "screenshot": str(args.out.resolve()) if args.out else "",
            "dock_screenshot": str(args.dock_out.resolve()) if args.dock_out else "",
            "deps_screenshot": str(args.deps_out.resolve()) if args.deps_out else "",
            "attributes_screenshot": str(args.attributes_out.resolve())
            if args.attributes_out
            else "",
            "installer_screenshot": str(args.installer_out.resolve()) if args.installer_out else "",
            "processing_screenshot": str(args.processing_out.resolve())
            if args.processing_out
            else "",
            "result_json": str(work / "result.json"),
            "timeout_s": args.timeout,
        }
        (work / "config.json").write_text(json.dumps(config), encoding="utf-8")
        home = work / "home"
        (home / "runtime").mkdir(parents=True, mode=0o700)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PROJ_LIB", "PROJ_DATA", "QT_QPA_PLATFORM")
        }
        site = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
        env.update(
            RS2SAM_E2E_CONFIG=str(work / "config.json"),
            HOME=str(home),
            XDG_DATA_HOME=str(home / "data"),
            XDG_CONFIG_HOME=str(home / "config"),
            XDG_CACHE_HOME=str(home / "cache"),
            XDG_RUNTIME_DIR=str(home / "runtime"),
            PYTHONPATH=str(site / "site-packages"),
            HF_HUB_OFFLINE="1",
        )
        command = [
            shutil.which("xvfb-run") or "xvfb-run",
            "-a",
            "-s",
            f"-screen 0 {width + 160}x{height + 100}x24",
            "timeout",
            str(args.timeout + 60),
            shutil.which("qgis") or "qgis",
            "--nologo",
            "--noversioncheck",
            "--profiles-path",
            str(profiles),
            "--code",
            str(ROOT / "tests" / "qgis" / "desktop_e2e.py"),
        ]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # nosec B603
        result_path = work / "result.json"
        if not result_path.exists():
            print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
            return 1
        result = json.loads(result_path.read_text(encoding="utf-8"))
        shots = (args.out, args.dock_out, args.deps_out, args.attributes_out, args.installer_out,
                 args.processing_out)
        for shot in shots:
            if shot and shot.exists():
                _shrink_png(shot)
        print(
            json.dumps(
                {"ok": result["ok"], "errors": result["errors"], "queries": result["queries"]},
                indent=2,
            )
        )
        return 0 if result["ok"] else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
