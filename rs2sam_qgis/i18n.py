"""Translation helpers: every user-visible string goes through :func:`tr`."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QCoreApplication, QLocale, QTranslator

CONTEXT = "Rs2Sam"
"""Translation context shared by the whole plugin (one ``.ts`` file)."""

I18N_DIR = Path(__file__).resolve().parent / "i18n"


def tr(text: str) -> str:
    """Translate ``text`` in the plugin's context (identity until a ``.qm`` file is installed)."""
    return QCoreApplication.translate(CONTEXT, text)


def install_translator() -> QTranslator | None:
    """Load ``i18n/rs2sam_qgis_<lang>.qm`` for the QGIS locale, if the file exists.

    Returns:
        The installed translator (keep it and pass it to :func:`remove_translator` on unload),
        or None when there is no translation for the current locale.
    """
    locale = str(QgsSettings().value("locale/userLocale", QLocale().name()) or "")[:2]
    qm_file = I18N_DIR / f"rs2sam_qgis_{locale}.qm"
    if not locale or not qm_file.is_file():
        return None
    translator = QTranslator()
    if not translator.load(str(qm_file)):
        return None
    QCoreApplication.installTranslator(translator)
    return translator


def remove_translator(translator: QTranslator | None) -> None:
    """Undo :func:`install_translator`."""
    if translator is not None:
        QCoreApplication.removeTranslator(translator)
