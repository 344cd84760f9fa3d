"""Does ``torch.compile`` pay back within one query? Compile time against time saved per tile.

``python -m bench.compile_check --config nano [--threads 2]``: eager forward of one random
tile (minimum of 3), the first compiled call (the compile), then the compiled forward
(minimum of 3). Prints one line.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    """See the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m bench.compile_check", description=__doc__)
    parser.add_argument("--config", default="nano")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from backend.model.architectures import architecture_of
    from backend.model.configs import get_model_config

    cfg = get_model_config(args.config)
    model = architecture_of(cfg).build(cfg, device="cpu", seed=0).eval()
    size = cfg.image_size
    image = np.random.default_rng(0).integers(0, 255, (1, size, size, 3), dtype=np.uint8)
    inputs = model.prepare_inputs(image, ["the buildings"])

    def tile(fn: object) -> float:
        with torch.inference_mode():
            t0 = time.perf_counter()
            fn(inputs)  # type: ignore[operator]
            return time.perf_counter() - t0

    eager = min(tile(model) for _ in range(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = torch.compile(model)
        first = tile(compiled)
        fast = min(tile(compiled) for _ in range(3))
    saved = eager - fast
    payback = f"{first / saved:.0f} tiles" if saved > 0 else "never"
    print(
        f"{cfg.name}: eager {eager:.3f} s/tile, compiled {fast:.3f} s/tile, first compiled call "
        f"(compile) {first:.1f} s; pays back after {payback}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
