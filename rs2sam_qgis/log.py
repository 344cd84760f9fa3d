"""The plugin's "RS2-SAM" tab in the QGIS log panel, and a bridge for backend ``logging``."""

from __future__ import annotations

import logging

from qgis.core import Qgis, QgsMessageLog

LOG_TAG = "RS2-SAM"
"""Name of the plugin's tab in View > Panels > Log Messages."""

_LEVELS = (
    (logging.ERROR, Qgis.MessageLevel.Critical),
    (logging.WARNING, Qgis.MessageLevel.Warning),
    (logging.INFO, Qgis.MessageLevel.Info),
)


def log_info(message: str) -> None:
    """Write an info line to the RS2-SAM log tab (thread-safe)."""
    QgsMessageLog.logMessage(message, LOG_TAG, Qgis.MessageLevel.Info)


def log_warning(message: str) -> None:
    """Write a warning to the RS2-SAM log tab (thread-safe)."""
    QgsMessageLog.logMessage(message, LOG_TAG, Qgis.MessageLevel.Warning)


def log_error(message: str) -> None:
    """Write an error (e.g. a traceback) to the RS2-SAM log tab (thread-safe)."""
    QgsMessageLog.logMessage(message, LOG_TAG, Qgis.MessageLevel.Critical)


class QgsLogHandler(logging.Handler):
    """Forward Python ``logging`` records (from the backend) to the RS2-SAM log tab.

    ``QgsMessageLog.logMessage`` may be called from any thread, so records emitted by the
    backend inside a ``QgsTask`` are safe.
    """

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record to the log tab."""
        try:
            message = self.format(record)
            level = next(
                (qlvl for lvl, qlvl in _LEVELS if record.levelno >= lvl), Qgis.MessageLevel.Info
            )
            QgsMessageLog.logMessage(message, LOG_TAG, level)
        except Exception:
            self.handleError(record)


# Loggers the bridge listens to: the dev checkout's package and the vendored copy.
BRIDGED_LOGGERS = ("backend", "rs2sam_qgis")


def install_log_bridge() -> QgsLogHandler:
    """Attach a :class:`QgsLogHandler` to the backend and plugin loggers (INFO and up)."""
    handler = QgsLogHandler(level=logging.INFO)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    for name in BRIDGED_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
    return handler


def remove_log_bridge(handler: QgsLogHandler | None) -> None:
    """Detach the handler installed by :func:`install_log_bridge` (on unload)."""
    if handler is None:
        return
    for name in BRIDGED_LOGGERS:
        logging.getLogger(name).removeHandler(handler)
