"""The plugin object QGIS creates: Processing provider, toolbar/menu action, dock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import QgsApplication, QgsSettings
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QToolBar

from .i18n import install_translator, remove_translator, tr
from .log import install_log_bridge, remove_log_bridge

ICON = Path(__file__).resolve().parent / "icons" / "segment_by_text.svg"
ACTION_NAME = "Rs2SamSegmentByTextAction"
INSTALL_ACTION_NAME = "Rs2SamInstallDependenciesAction"
MODELS_ACTION_NAME = "Rs2SamModelsAction"
TOOLBAR_NAME = "Rs2SamToolbar"
DOCK_OPEN_KEY = "rs2sam/dock_open"
"""QgsSettings key: the dock was open when QGIS last closed (it is shown again at start)."""


class Rs2SamPlugin:
    """Owns everything the plugin adds to QGIS and removes all of it in :meth:`unload`.

    Args:
        iface: The QGIS interface; None when ``qgis_process`` loads the plugin (then only
            :meth:`initProcessing` is called).
    """

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: Any = None
        self.action: QAction | None = None
        self.install_action: QAction | None = None
        self.toolbar: QToolBar | None = None
        self.installer: Any = None
        self.models_action: QAction | None = None
        self.models_dialog: Any = None
        self.dock: Any = None
        self.controller: Any = None
        self.menu_name = ""
        self._log_handler: Any = None
        self._translator: Any = None

    # ------------------------------------------------------------------ QGIS hooks
    def initProcessing(self) -> None:
        """Register the ``rs2sam`` provider (no GUI code: ``qgis_process`` calls only this)."""
        if self.provider is not None:
            return
        from .processing_provider.provider import Rs2SamProvider

        self.provider = Rs2SamProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        """Add the "Segment by text" action to the plugin's own toolbar and the Raster menu.

        Its own toolbar, because QGIS hides the Raster toolbar in a fresh profile.
        """
        self._translator = install_translator()
        self._log_handler = install_log_bridge()
        self.initProcessing()
        self.menu_name = tr("&RS2-SAM")
        action = QAction(QIcon(str(ICON)), tr("Segment by text"), self.iface.mainWindow())
        action.setObjectName(ACTION_NAME)
        action.setToolTip(tr("Segment by text: polygons of what a sentence describes"))
        action.setCheckable(True)
        action.toggled.connect(self._on_action_toggled)
        self.toolbar = self.iface.addToolBar(tr("Segment by text"))
        self.toolbar.setObjectName(TOOLBAR_NAME)
        self.toolbar.setToolTip(tr("Segment by text (RS2-SAM 2)"))
        self.toolbar.addAction(action)
        self.iface.addPluginToRasterMenu(self.menu_name, action)
        self.action = action
        install = QAction(tr("Install dependencies…"), self.iface.mainWindow())
        install.setObjectName(INSTALL_ACTION_NAME)
        install.setToolTip(tr("Install torch, sam2, open_clip, … into the plugin's own folder"))
        install.triggered.connect(self.show_installer)
        self.iface.addPluginToRasterMenu(self.menu_name, install)
        self.install_action = install
        models = QAction(tr("Models…"), self.iface.mainWindow())
        models.setObjectName(MODELS_ACTION_NAME)
        models.setToolTip(tr("Get the published RS2-SAM 2 model, import a folder, remove"))
        models.triggered.connect(self.show_models)
        self.iface.addPluginToRasterMenu(self.menu_name, models)
        self.models_action = models
        from .remedies import PUBLISHED_MODEL, register_remedy

        register_remedy(PUBLISHED_MODEL, tr("Get the published RS2-SAM 2 model…"), self.show_models)
        starting = not self.iface.mainWindow().isVisible()  # QGIS start-up, not a reload
        if starting and QgsSettings().value(DOCK_OPEN_KEY, False, type=bool):
            self.show_dock()  # before QGIS restores the window state: it returns to its place

    def unload(self) -> None:
        """Remove every action, menu entry, dock, provider and connection (reload-safe)."""
        if self.installer is not None:
            self.installer.runner.cancel()  # a running pip is killed; nothing is swapped in
            self.installer.close()
            self.installer.setParent(None)
            self.installer.deleteLater()
            self.installer = None
        if self.models_dialog is not None:
            self.models_dialog.cancel()  # a running get stops; nothing is imported
            self.models_dialog.close()
            self.models_dialog.deleteLater()
            self.models_dialog = None
        if self.models_action is not None:
            from .remedies import PUBLISHED_MODEL, unregister_remedy

            unregister_remedy(PUBLISHED_MODEL)
            self.models_action.triggered.disconnect(self.show_models)
            self.iface.removePluginRasterMenu(self.menu_name, self.models_action)
            self.models_action.setParent(None)
            self.models_action.deleteLater()
            self.models_action = None
        if self.install_action is not None:
            self.install_action.triggered.disconnect(self.show_installer)
            self.iface.removePluginRasterMenu(self.menu_name, self.install_action)
            self.install_action.setParent(None)
            self.install_action.deleteLater()
            self.install_action = None
        if self.controller is not None:
            self.controller.shutdown()
            self.controller = None
        if self.dock is not None:
            from .remedy_links import disconnect_remedies

            disconnect_remedies()
            self.dock.visibilityChanged.disconnect(self._on_dock_visibility)
            self.dock.cleanup()
            self.iface.removeDockWidget(self.dock)
            self.dock.setParent(None)
            self.dock.deleteLater()
            self.dock = None
        if self.action is not None:
            self.action.toggled.disconnect(self._on_action_toggled)
            self.iface.removePluginRasterMenu(self.menu_name, self.action)
            self.action.setParent(None)
            self.action.deleteLater()
            self.action = None
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.setParent(None)
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        from .runner import shutdown_backend_thread

        shutdown_backend_thread()
        remove_log_bridge(self._log_handler)
        self._log_handler = None
        remove_translator(self._translator)
        self._translator = None

    # ------------------------------------------------------------------ dock
    def show_dock(self) -> Any:
        """Create the dock on first use, show it and return it."""
        if self.dock is None:
            from .controller import SegmentController
            from .dock import SegmentDock
            from .settings import load_settings

            self.dock = SegmentDock(
                self.iface.mapCanvas(), load_settings(), self.iface.mainWindow()
            )
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            self.controller = SegmentController(self.iface, self.dock)
            self.dock.visibilityChanged.connect(self._on_dock_visibility)
            self.dock.install_requested.connect(self.show_installer)
            self.dock.models_requested.connect(self.show_models)
            from .remedy_links import connect_remedies

            connect_remedies(self)  # what a weak answer's box offers
            self.controller.refresh_dependencies(notify=True)
        self.dock.select_active_layer(self.iface.activeLayer())
        self.dock.show()
        self.dock.raise_()
        return self.dock

    # ------------------------------------------------------------------ installer
    def show_installer(self, *_args: object) -> Any:
        """Open the dependency installer (one at a time) and return it."""
        from .deps import check_dependencies
        from .installer import INSTALLING
        from .installer_dialog import InstallerDialog

        if self.installer is not None and (
            self.installer.isVisible() or self.installer.state == INSTALLING
        ):
            self.installer.raise_()
            return self.installer
        if self.installer is not None:
            self.installer.deleteLater()
        self.installer = InstallerDialog(check_dependencies(), parent=self.iface.mainWindow())
        self.installer.state_changed.connect(self._on_install_state)
        self.installer.show()
        self.installer.raise_()
        return self.installer

    # ------------------------------------------------------------------ models
    def show_models(self, *_args: object) -> Any:
        """Open the model manager (one at a time) and return it."""
        from .models_dialog import ModelsDialog

        if self.models_dialog is None:
            self.models_dialog = ModelsDialog(
                self.iface.mainWindow(), message_bar=self.iface.messageBar()
            )
            self.models_dialog.model_chosen.connect(self._on_model_chosen)
        self.models_dialog.refresh()
        self.models_dialog.show()
        self.models_dialog.raise_()
        return self.models_dialog

    def _on_model_chosen(self, checkpoint: str) -> None:
        if self.dock is not None:
            self.dock.checkpoint_widget.setFilePath(checkpoint)

    def _on_install_state(self, state: str) -> None:
        from .installer import DONE

        if state == DONE and self.dock is not None:
            self.dock.set_dependency_problem(
                tr("Dependencies installed. Restart QGIS to load them."), installable=False
            )

    def _on_action_toggled(self, checked: bool) -> None:
        if checked:
            self.show_dock()
        elif self.dock is not None:
            self.dock.hide()

    def _on_dock_visibility(self, visible: bool) -> None:
        if self.iface.mainWindow().isVisible():  # not while QGIS closes its window
            QgsSettings().setValue(DOCK_OPEN_KEY, visible)
        if self.action is not None and self.action.isChecked() != visible:
            self.action.blockSignals(True)
            self.action.setChecked(visible)
            self.action.blockSignals(False)
