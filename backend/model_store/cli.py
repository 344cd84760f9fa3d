"""``python -m backend models list | get NAME | import DIR | remove NAME``.

Every failure is one line on stderr and exit status 2 (through the main CLI's handler): no
network, unknown name, not enough disk space, licence not accepted, proxy errors, a damaged
file. A cancelled (Ctrl-C) get keeps what was downloaded; the same command resumes it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .progress import ProgressState, format_bytes

__all__ = ["add_models_parser"]


def add_models_parser(sub: Any) -> None:
    """Add the ``models`` command to the main CLI's subparsers."""
    models = sub.add_parser(
        "models",
        help="list, get, import or remove models (the published RS2-SAM 2 weights)",
        description="The model manager: list what can run, get a published RS2-SAM 2 model "
        "from Hugging Face (HF_ENDPOINT, HF_HOME and proxy variables are honoured), import a "
        "release folder you already have, remove an installed model. Models live in "
        "RS2SAM_MODELS_DIR (default ~/.local/share/rs2sam/models).",
    )
    verbs = models.add_subparsers(dest="verb", required=True, parser_class=sub._parser_class)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", metavar="DIR", help="models folder (default RS2SAM_MODELS_DIR)")
    common.add_argument("-v", "--verbose", action="store_true", help="log details")
    verbs.add_parser("list", parents=[common], help="what can run, and where it lives")
    get = verbs.add_parser("get", parents=[common], help="download and import a published model")
    get.add_argument("name", metavar="NAME", help="rrsisd or refseg")
    imp = verbs.add_parser("import", parents=[common], help="import a release folder you have")
    imp.add_argument("folder", metavar="DIR", help="folder with config.json and the weights")
    imp.add_argument("--name", help="name of the installed model (default: the folder's name)")
    imp.add_argument("--gsd", type=float, metavar="M", help="working resolution in m/px")
    for p in (get, imp):
        p.add_argument("--fp16", action="store_true", help="store float16 (half the size)")
        p.add_argument("--accept-licence", action="store_true", help="accept the licence shown")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
    get.add_argument(
        "--keep-download", action="store_true", help="keep the raw download after the import"
    )
    rm = verbs.add_parser("remove", parents=[common], help="delete an installed model")
    rm.add_argument("name", metavar="NAME")
    models.set_defaults(handler=run_models_command)


def run_models_command(args: argparse.Namespace) -> int:
    """Dispatch ``models <verb>``; returns the exit status."""
    import logging

    from .manager import ModelStore

    if not args.verbose:  # the client's retry warnings would break the one-line contract
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    store = ModelStore(args.dir)
    handlers = {"list": _list, "get": _get, "import": _get, "remove": _remove}
    return handlers[args.verb](store, args)


def _list(store: Any, args: argparse.Namespace) -> int:
    print(f"models folder: {store.root}")
    for row in store.rows():
        state = "installed" if row.installed else "not installed"
        size = format_bytes(row.size_bytes) if row.size_bytes else "-"
        print(f"{row.name:<10} {row.kind:<9} {state:<13} {size:>10}  licence: {row.licence}")
        print(f"{'':<10} {row.title}; {row.trained_on}")
        print(f"{'':<10} {row.where}")
    return 0


def _get(store: Any, args: argparse.Namespace) -> int:
    from ..errors import OutputError
    from .errors import LicenceNotAccepted

    if args.verb == "get":
        job = store.prepare_get(args.name, fp16=args.fp16)
    else:
        job = store.prepare_import(args.folder, name=args.name, fp16=args.fp16, gsd_m=args.gsd)
    print(job.describe(), file=sys.stderr)
    if job.problem is not None:
        raise OutputError(job.problem)
    if not store.licence_accepted(job):
        print(job.licence_text, file=sys.stderr)
        if not args.accept_licence:
            if not sys.stdin.isatty():
                raise LicenceNotAccepted(
                    f"the licence of {job.plan.label} (shown above) must be accepted: run again "
                    "with --accept-licence; nothing was downloaded"
                )
            answer = input("Accept this licence? [y/N] ").strip().lower()
            if answer not in ("y", "yes"):
                raise LicenceNotAccepted(
                    f"the licence of {job.plan.label} was not accepted; nothing was downloaded"
                )
        store.accept_licence(job)
    installed = store.run(
        job, keep_download=getattr(args, "keep_download", False), on_progress=_bar(args.quiet)
    )
    print(installed.summary)
    print(f"installed {installed.name}: {installed.checkpoint}")
    if installed.kept_download is not None:
        print(f"raw download kept in {installed.kept_download}")
    return 0


def _bar(quiet: bool) -> Any:
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def on_progress(state: ProgressState) -> None:
        bar = bars.get(state.stage)
        if bar is None:
            for old in bars.values():
                old.close()
            bar = bars[state.stage] = tqdm(
                total=state.total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=state.stage,
                file=sys.stderr,
                disable=True if quiet else None,
            )
        bar.total = state.total
        bar.update(state.done - bar.n)
        if state.done >= state.total:
            bar.close()

    return on_progress


def _remove(store: Any, args: argparse.Namespace) -> int:
    freed = store.remove(args.name)
    print(f"removed {args.name} ({format_bytes(freed)} freed)")
    return 0
