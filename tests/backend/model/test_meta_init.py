"""Building on the meta device skips the random init (and with it the torch._dynamo import)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch
from torch import nn

from backend.model.meta_init import params_on_meta


def test_meta_build_skips_init_but_keeps_shapes_and_flags():
    with params_on_meta():
        embedding = nn.Embedding(5, 3)
        linear = nn.Linear(4, 2)
        nn.init.trunc_normal_(linear.weight, std=0.02)
        linear.bias.requires_grad_(False)
        buffer_owner = nn.BatchNorm1d(3)
    assert embedding.weight.is_meta and embedding.weight.shape == (5, 3)
    assert linear.weight.is_meta and linear.weight.shape == (2, 4)
    assert linear.bias.requires_grad is False  # not a value write: still applied
    assert buffer_owner.running_var.device.type == "cpu"  # buffers stay real
    assert torch.equal(buffer_owner.running_var, torch.ones(3))
    real = nn.Linear(2, 2)  # outside the context: initialised as usual
    assert not real.weight.is_meta and real.weight.abs().sum() > 0


def test_meta_build_does_not_import_dynamo():
    code = textwrap.dedent(
        """
        import sys
        from torch import nn
        from backend.model.meta_init import params_on_meta
        with params_on_meta():
            nn.Embedding(10, 4)
            nn.init.normal_(nn.Linear(4, 4).weight)
        print("torch._dynamo" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
