"""Adapt a model to the user's imagery from their example polygons (``python -m training adapt``).

Modules: ``spec`` (inputs and their checks), ``sampling`` (tiles, spatial hold-out), ``data``
(pairs, forgetting guard, hold-out scoring), ``loop`` (budgeted training), ``policies`` (what
each architecture trains), ``report`` (result and provenance), ``engine`` (``adapt``), ``cli``.
Heavy modules load on first use: importing this package imports no torch.
"""

from __future__ import annotations

__all__ = ["AdaptSpec"]

from training.adapt.spec import AdaptSpec
