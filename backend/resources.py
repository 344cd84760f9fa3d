"""Resource planning (no torch at import): memory available, what loading a model needs.

Example:
    >>> need = load_bytes(model_on_meta)          # built with device="meta": no memory used
    >>> check_fits(need, "cpu", what="nano.safetensors")
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .errors import ResourceError

__all__ = ["available_bytes", "check_fits", "load_bytes", "tensor_bytes"]

GiB = 1024**3
_HEADROOM = 0.9  # use at most 90 % of what the system reports as available
_WORKSPACE = 512 * 1024**2  # activations and allocator slack of one inference, bytes


def tensor_bytes(module: Any) -> int:
    """Bytes of every parameter and buffer of ``module`` at its dtypes (works on meta)."""
    total = 0
    for tensor in [*module.parameters(), *module.buffers()]:
        total += tensor.numel() * tensor.element_size()
    return total


def load_bytes(module: Any) -> int:
    """Peak bytes to load a checkpoint into ``module``: the model + workspace.

    Tensors are read one at a time straight into the model's dtype
    (:mod:`backend.model.stream_load`), so there is no second copy of the weights.
    """
    return tensor_bytes(module) + _WORKSPACE


def available_bytes(device: Any = "cpu") -> int | None:
    """Memory available for new allocations on ``device``, or None when it cannot be told.

    CPU: ``MemAvailable`` of ``/proc/meminfo`` (Linux), ``sysconf`` elsewhere, the cgroup
    limit when one is set and smaller. CUDA: ``torch.cuda.mem_get_info``.
    """
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        import torch

        index = getattr(device, "index", None)
        try:
            free, _ = torch.cuda.mem_get_info(index if index is not None else 0)
        except (RuntimeError, AssertionError):
            return None
        return int(free)
    if kind != "cpu":
        return None
    found = _meminfo_available()
    if found is None and hasattr(os, "sysconf"):
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            found = None
    limit = _cgroup_limit()
    if limit is not None:
        found = limit if found is None else min(found, limit)
    return found


def check_fits(needed: int, device: Any = "cpu", *, what: str = "the model") -> None:
    """Raise :class:`ResourceError` when ``needed`` bytes will not fit on ``device``.

    The environment variable ``RS2SAM_MEMORY_LIMIT_GB`` caps what counts as available (for
    shared machines and tests).

    Raises:
        ResourceError: The message gives both sizes in GiB and what to do.
    """
    available = available_bytes(device)
    cap = os.environ.get("RS2SAM_MEMORY_LIMIT_GB")
    if cap:
        try:
            capped = int(float(cap) * GiB)
        except ValueError:
            raise ResourceError(
                f"RS2SAM_MEMORY_LIMIT_GB={cap!r} is not a number of GiB; unset it or use e.g. 8"
            ) from None
        available = capped if available is None else min(available, capped)
    if available is None or needed <= available * _HEADROOM:
        return
    raise ResourceError(
        f"{what} needs about {needed / GiB:.1f} GiB of memory on {device} but only "
        f"{available / GiB:.1f} GiB is available; close other programs, use a GPU "
        "(--device cuda) or a smaller model"
    )


def _meminfo_available() -> int | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_limit() -> int | None:
    """Room left under this process's cgroup memory limit (limit - usage), if one is set."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = Path(usage_file).read_text().strip()
        except OSError:
            continue
        if limit.isdigit() and usage.isdigit() and int(limit) < 1 << 60:
            return max(0, int(limit) - int(usage))
    return None
