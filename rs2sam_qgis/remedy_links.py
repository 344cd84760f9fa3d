"""Connect the teaching remedy to the hook in :mod:`.remedies` once the dock exists.

**Teach from polygons** puts the prompt into *Find*, says in the status line what to do (a
polygon layer with a few examples, active), and focuses *Teach from these features…*. (The
plugin registers **Get the published model** itself, with its Models menu entry.)
"""

from __future__ import annotations

from typing import Any

from .i18n import tr
from .remedies import TEACH, RemedyContext, register_remedy, unregister_remedy


def connect_remedies(plugin: Any) -> None:
    """Register the teaching remedy for ``plugin`` (its dock must exist)."""
    register_remedy(TEACH, tr("Teach from polygons…"), lambda ctx: _offer_teaching(plugin, ctx))


def disconnect_remedies() -> None:
    """Unregister it (plugin unload)."""
    unregister_remedy(TEACH)


def _offer_teaching(plugin: Any, context: RemedyContext) -> None:
    dock = plugin.show_dock()
    dock.query_combo.setEditText(context.prompt)
    dock.set_status(
        tr(
            "To teach the model what '{prompt}' looks like here: draw or select a few polygons "
            "of it in a polygon layer, make that layer the active one, then click 'Teach from "
            "these features…'."
        ).format(prompt=context.prompt)
    )
    dock.teach_part.button.setFocus()
