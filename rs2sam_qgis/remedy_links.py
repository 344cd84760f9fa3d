"""Connect the project's two remedies to the hook in :mod:`.remedies` once the dock exists.

* **Get the published model** opens the model manager (``Rs2SamPlugin.show_models``).
* **Teach from polygons** puts the prompt into *Find*, says in the status line what to do
  (a polygon layer with a few examples, active), and focuses *Teach from these features…*.
"""

from __future__ import annotations

from typing import Any

from .i18n import tr
from .remedies import PUBLISHED_MODEL, TEACH, RemedyContext, register_remedy, unregister_remedy


def connect_remedies(plugin: Any) -> None:
    """Register both remedies for ``plugin`` (its dock must exist)."""
    register_remedy(
        PUBLISHED_MODEL, tr("Get the published model…"), lambda _ctx: plugin.show_models()
    )
    register_remedy(TEACH, tr("Teach from polygons…"), lambda ctx: _offer_teaching(plugin, ctx))


def disconnect_remedies() -> None:
    """Unregister them (plugin unload)."""
    unregister_remedy(PUBLISHED_MODEL)
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
