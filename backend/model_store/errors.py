"""Errors of the model manager."""

from __future__ import annotations

from ..errors import Rs2SamError

__all__ = ["DownloadError", "LicenceNotAccepted"]


class DownloadError(Rs2SamError, OSError):
    """The source could not be reached, refused the request, or sent a damaged file."""


class LicenceNotAccepted(Rs2SamError, PermissionError):
    """The model's licence was shown and not accepted; nothing was downloaded."""
