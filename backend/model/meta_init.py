"""Building a model without memory: parameters on the meta device, buffers on the CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["params_on_meta"]


@contextlib.contextmanager
def params_on_meta() -> Iterator[None]:
    """Create every parameter on the meta device (no memory, no init cost).

    Buffers stay on the CPU. Used by the builders with ``device="meta"`` (checkpoint loading,
    parameter counts of big configs); ``torch.device("meta")`` alone fails inside sam2's Hiera
    (``Tensor.item``). The modules' random initialisation of those parameters is skipped
    (:class:`_SkipMetaInit`): on meta tensors it computes nothing, but its Python meta kernels
    import ``torch._dynamo`` (about 1-2 s of a cold start, more under load).
    """
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        with _SkipMetaInit():
            yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]


_FILL_OPS = frozenset(
    {
        # torch.nn.init
        *("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_"),
        *("dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_"),
        *("kaiming_normal_", "orthogonal_", "sparse_"),
        # Tensor methods that only write values (the tensor's shape and flags stay)
        *("fill_", "zero_", "copy_", "clamp_", "clamp_min_", "clamp_max_", "erfinv_"),
        *("mul_", "add_", "sub_", "div_", "exponential_", "random_", "bernoulli_"),
        *("log_normal_", "cauchy_", "geometric_", "fill_diagonal_", "masked_fill_"),
    }
)
"""In-place value writes that are no-ops on a meta tensor (it holds no values)."""


class _SkipMetaInit(TorchFunctionMode):
    """Returns a meta tensor unchanged from the value-writing ops of :data:`_FILL_OPS`."""

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in _FILL_OPS:
            target = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        return func(*args, **kwargs)
