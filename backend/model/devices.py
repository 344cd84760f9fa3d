"""Which torch device runs a model: ``"auto"`` or a name, checked against this machine."""

from __future__ import annotations

import torch

from ..errors import DeviceError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` into an available torch device.

    ``"auto"`` picks CUDA, then Apple MPS, then the CPU.

    Raises:
        DeviceError: If the name is unknown or the device is not available here.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise DeviceError(f"device must be a string like 'cpu' or 'cuda:0', got {device!r}")
    name = device.strip().lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not has_mps:
            raise DeviceError("device 'mps' is not available on this machine; use 'cpu' or 'auto'")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        index_text = name.partition(":")[2]
        if index_text and not index_text.isdigit():
            raise DeviceError(f"unknown device {device!r}; use 'cuda' or 'cuda:N' with N a number")
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {device!r} requested but CUDA is not available here; use 'cpu' or 'auto'"
            )
        if index_text and int(index_text) >= torch.cuda.device_count():
            raise DeviceError(
                f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s)"
            )
        return torch.device(name)
    raise DeviceError(
        f"unknown device {device!r}; use one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'"
    )
