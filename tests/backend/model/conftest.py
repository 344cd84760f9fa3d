"""Shared fixtures for the model tests: tiny random-init models, built once per session."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def _open_adapters(model, seed: int = 0):
    """Give the zero-initialised adapter outputs random weights, as after some training,
    so that the adapters' text attention actually reaches the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in model.image_encoder.trunk.blocks:
            for layer in (block.Space_Adapter.fc2, block.MLP_Adapter.fc2):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * 0.1)
    return model


@pytest.fixture(scope="session")
def open_adapters():
    """The adapter-opening helper, for tests that build their own model."""
    return _open_adapters


@pytest.fixture(scope="session")
def tiny():
    """test-tiny, design A (two towers), random init with open adapters, eval mode."""
    from backend.model.rs2sam import build_model

    return _open_adapters(build_model("test-tiny"))


@pytest.fixture(scope="session")
def tiny_b():
    """test-tiny with design B (early fusion), open adapters."""
    from backend.model.configs import get_model_config
    from backend.model.rs2sam import build_model

    return _open_adapters(build_model(get_model_config("test-tiny", union_encoder="earlyfusion")))


@pytest.fixture(scope="session", params=["twotower", "earlyfusion"])
def tiny_any(request, tiny, tiny_b):
    """Both union-encoder designs."""
    return tiny if request.param == "twotower" else tiny_b


@pytest.fixture
def images() -> np.ndarray:
    """Two different (2, 72, 96, 3) uint8 RGB images: a red square on noise, and its flip."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (72, 96, 3), dtype=np.uint8)
    a[20:50, 30:70] = (220, 30, 30)
    return np.stack([a, a[::-1, ::-1].copy()])
