"""The SAM 2 architectures a model config may name (stdlib only).

Shared by the configs of every architecture that embeds SAM 2 (``rs2sam2`` in
:mod:`backend.model.configs`, ``rs2sam2-official`` in :mod:`backend.model.official.config`)
and by the builder (:mod:`backend.model.sam2_build`).
"""

from __future__ import annotations

__all__ = ["SAM2_ARCHS"]

SAM2_ARCHS: dict[str, tuple[str, str]] = {
    "test_tiny.yaml": ("backend.model", "sam2_yaml/test_tiny.yaml"),
    "nano.yaml": ("backend.model", "sam2_yaml/nano.yaml"),
    "sam2:configs/sam2.1/sam2.1_hiera_t.yaml": ("sam2", "configs/sam2.1/sam2.1_hiera_t.yaml"),
    "sam2:configs/sam2.1/sam2.1_hiera_s.yaml": ("sam2", "configs/sam2.1/sam2.1_hiera_s.yaml"),
    "sam2:configs/sam2.1/sam2.1_hiera_b+.yaml": ("sam2", "configs/sam2.1/sam2.1_hiera_b+.yaml"),
    "sam2:configs/sam2.1/sam2.1_hiera_l.yaml": ("sam2", "configs/sam2.1/sam2.1_hiera_l.yaml"),
    "sam2:configs/sam2/sam2_hiera_l.yaml": ("sam2", "configs/sam2/sam2_hiera_l.yaml"),
}
"""SAM 2 architectures a config may name: key -> (package, resource inside it).

The key is what checkpoints store in ``ModelConfig.sam2_yaml``; it is never used as a path.
"""
