"""One rule for every command that writes: an output never replaces what the command reads.

Every writing command (``segment``, ``batch``, ``import-official``, ``training export`` /
``pack`` / ``build-refer``, the model manager, adaptation) checks its output here *before* any
work and before creating anything::

    out = check_output_file(args.out, inputs=[args.folder], suffixes=(".safetensors",),
                            overwrite=args.overwrite)
    check_output_folder(args.out, inputs=[args.root], overwrite=args.overwrite)
    check_not_an_input(path, inputs)          # the bare rule, for any path a command writes

An *input* is a file or a folder the command reads. A folder stands for itself and every file
below it (a release folder, a data set). An output collides with an input when it is

* the same path after resolving links and ``..`` (a link to the input, ``dir/../input``);
* the same file by inode (a hard link, a bind mount);
* the same name on a case-insensitive file system (``IN.GPKG`` for ``in.gpkg`` on macOS);
* an existing file or folder inside an input folder (it is one of the folder's files);
* a folder that holds an input (:func:`check_output_folder` only: replacing the folder would
  take the input with it).

Every refusal is an :class:`~backend.errors.OutputError` whose one-line message names the
value and the fix. This module imports only the standard library (no torch, no QGIS).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import OutputError

__all__ = ["check_not_an_input", "check_output_file", "check_output_folder", "check_suffix"]

PathLike = str | os.PathLike[str]

_MAX_WALK = 200_000
"""Most files of one input folder compared by inode (a bigger folder is compared by path)."""


def _real(path: PathLike) -> str:
    return os.path.realpath(os.path.expanduser(os.fspath(path)))


def _inside(child: str, parent: str) -> bool:
    """Whether resolved path ``child`` lies strictly below resolved folder ``parent``."""
    return child != parent and child.startswith(parent.rstrip(os.sep) + os.sep)


def _case_insensitive(path: Path) -> bool:
    """Whether ``path``'s file system ignores case (the swapped-case name finds the file)."""
    if not path.exists():
        return False
    swapped = path.with_name(path.name.swapcase())
    if swapped.name == path.name:
        return False
    try:
        return swapped.exists() and os.path.samefile(swapped, path)
    except OSError:
        return False


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _walk_files(folder: str) -> Iterator[str]:
    """Files below ``folder`` (links not followed), at most :data:`_MAX_WALK`."""
    count = 0
    for root, _, files in os.walk(folder):
        for name in files:
            count += 1
            if count > _MAX_WALK:
                return
            yield os.path.join(root, name)


def _refuse(option: str, out: PathLike, what: str) -> OutputError:
    return OutputError(
        f"{option} {os.fspath(out)!r} is {what}; writing there would destroy the input. "
        f"Choose another {option} outside the inputs"
    )


def check_not_an_input(
    out: PathLike, inputs: Sequence[PathLike], *, option: str = "output"
) -> None:
    """Refuse an output path that is, or resolves to, any input (see the module docstring).

    Args:
        out: The path the command will write (a file, or a folder for folder outputs).
        inputs: Every file or folder the command reads; ``""`` and GDAL ``/vsi`` paths are
            skipped.
        option: How the user gave ``out`` (``"--out"``, ``"output"``), for the message.

    Raises:
        OutputError: ``out`` collides with an input.
    """
    out_real = _real(out)
    out_id = _identity(out_real)
    for item in inputs:
        text = os.fspath(item)
        if not text or text.startswith("/vsi"):
            continue
        source_real = _real(text)
        if out_real == source_real:
            raise _refuse(option, out, f"the input {text!r}")
        source_is_dir = os.path.isdir(source_real)
        if source_is_dir and _inside(out_real, source_real) and os.path.lexists(out_real):
            raise _refuse(option, out, f"a file of the input folder {text!r}")
        source = Path(source_real)
        if _case_insensitive(source) and out_real.lower() == source_real.lower():
            raise _refuse(option, out, f"the input {text!r} (the file system ignores case)")
        if out_id is None:
            continue
        if _identity(source_real) == out_id:
            raise _refuse(option, out, f"the input {text!r} (the same file by another name)")
        if source_is_dir:
            for file in _walk_files(source_real):
                if _identity(file) == out_id:
                    raise _refuse(
                        option, out, f"the file {file!r} of the input folder {text!r} (a link)"
                    )


def check_suffix(out: PathLike, suffixes: Sequence[str], *, option: str = "--out") -> None:
    """Refuse an output whose extension is not one of ``suffixes`` (case-insensitive).

    Raises:
        OutputError: Wrong extension; the message lists the allowed ones.
    """
    name = os.fspath(out)
    if not any(name.lower().endswith(s.lower()) for s in suffixes):
        allowed = " or ".join(suffixes)
        raise OutputError(
            f"{option} {name!r} must end in {allowed}; give a file name like "
            f"{'model' if '.safetensors' in suffixes else 'output'}{suffixes[0]}"
        )


def check_output_file(
    out: PathLike,
    *,
    inputs: Sequence[PathLike] = (),
    suffixes: Sequence[str],
    overwrite: bool = False,
    option: str = "--out",
) -> Path:
    """Check an output file before any work: not an input, right extension, writable place.

    Args:
        out: The file to write (``~`` is expanded).
        inputs: Every file or folder the command reads.
        suffixes: Allowed extensions, e.g. ``(".safetensors",)``.
        overwrite: Whether an existing (non-input) ``out`` may be replaced.
        option: The option name for messages.

    Returns:
        ``out`` as a :class:`~pathlib.Path` (``~`` expanded).

    Raises:
        OutputError: An input, a wrong extension, a folder, a missing or read-only parent
            folder, or an existing file without ``overwrite``.
    """
    target = Path(os.path.expanduser(os.fspath(out)))
    check_not_an_input(target, inputs, option=option)
    check_suffix(target, suffixes, option=option)
    if target.is_dir():
        raise OutputError(f"{option} {str(target)!r} is a folder; give a file name")
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(
            f"the folder of {option} {str(target)!r} does not exist; create it or choose "
            f"another {option}"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(
            f"the folder of {option} {str(target)!r} is not writable; choose another {option} "
            "or fix its permissions"
        )
    if target.exists() and not overwrite:
        raise OutputError(
            f"{option} {str(target)!r} already exists; pass --overwrite or choose another name"
        )
    return target


def check_output_folder(
    out: PathLike,
    *,
    inputs: Sequence[PathLike] = (),
    overwrite: bool = False,
    must_be_new: bool = True,
    option: str = "--out",
) -> Path:
    """Check an output folder before any work: not an input, holds no input, not a file.

    Creating the folder (and any missing parents) is left to the caller.

    Args:
        out: The folder to create (or replace with ``overwrite``).
        inputs: Every file or folder the command reads.
        overwrite: Whether an existing ``out`` may be replaced.
        must_be_new: Refuse an existing ``out`` without ``overwrite`` (False: a folder that is
            added to, like a batch job's).
        option: The option name for messages.

    Returns:
        ``out`` as a :class:`~pathlib.Path` (``~`` expanded).

    Raises:
        OutputError: An input, a folder holding an input, a file, or an existing folder
            without ``overwrite``.
    """
    target = Path(os.path.expanduser(os.fspath(out)))
    check_not_an_input(target, inputs, option=option)
    out_real = _real(target)
    for item in inputs:
        text = os.fspath(item)
        if text and not text.startswith("/vsi") and _inside(_real(text), out_real):
            raise _refuse(option, target, f"a folder that holds the input {text!r}")
    if target.exists() and not target.is_dir():
        raise OutputError(f"{option} {str(target)!r} is a file; give a folder")
    if must_be_new and target.exists() and not overwrite:
        raise OutputError(
            f"{option} {str(target)!r} already exists; pass --overwrite or choose another folder"
        )
    return target
