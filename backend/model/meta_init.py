"""Building a model without memory: parameters on the meta device, buffers on the CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["params_on_meta"]


@contextlib.contextmanager
def params_on_meta() -> Iterator[None]:
    """Create every parameter on the meta device (no memory, no init cost).

    Buffers stay on the CPU. Used by the builders with ``device="meta"`` (checkpoint loading,
    parameter counts of big configs); ``torch.device("meta")`` alone fails inside sam2's Hiera
    (``Tensor.item``).
    """
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]
