"""Training package of "Segment by text": data, expression builder, losses, metrics, trainer.

Importing it is light; torch loads only in the modules that need it. Entry point:
``python -m training {train,eval,export,build-refer} ...`` (see :mod:`training.cli`).
"""

from __future__ import annotations

__all__: list[str] = []
