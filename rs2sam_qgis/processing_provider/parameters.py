"""The Processing parameters of ``rs2sam:segmentbytext`` (their ids are the public contract).

Declared apart from the algorithm's run logic; :meth:`SegmentByTextAlgorithm.initAlgorithm`
adds them in this order.
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputDefinition,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from ..i18n import tr
from ..settings import default_threads

DEVICES = ["auto", "cpu", "cuda", "mps"]
PRECISIONS = ["auto", "fp32", "bf16", "int8"]


def segment_parameters(
    ids: Any,
) -> tuple[list[QgsProcessingParameterDefinition], list[QgsProcessingOutputDefinition]]:
    """The algorithm's parameters and outputs, in dialog order.

    Args:
        ids: The algorithm class (or instance): its ``INPUT``, ``TEXT``, ... constants name the
            parameters.

    Returns:
        ``(parameters, outputs)``.
    """
    params: list[QgsProcessingParameterDefinition] = []
    outputs: list[QgsProcessingOutputDefinition] = []
    params.append(QgsProcessingParameterRasterLayer(ids.INPUT, tr("Raster layer")))
    params.append(
        QgsProcessingParameterString(ids.TEXT, tr("Text (what to segment)"), "", False, False)
    )
    params.append(
        QgsProcessingParameterExtent(
            ids.EXTENT, tr("Extent (empty = whole layer)"), None, True
        )
    )
    params.append(
        QgsProcessingParameterFeatureSource(
            ids.AOI,
            tr("Area of interest polygons (optional; only pixels inside become polygons)"),
            [QgsProcessing.SourceType.TypeVectorPolygon],
            None,
            True,
        )
    )
    params.append(
        QgsProcessingParameterFile(
            ids.CHECKPOINT,
            tr("Checkpoint (.safetensors; empty = bundled weights)"),
            QgsProcessingParameterFile.Behavior.File,
            "",
            None,
            True,
            tr("Checkpoints (*.safetensors)"),
        )
    )
    params.append(
        QgsProcessingParameterNumber(
            ids.THRESHOLD,
            tr("Threshold"),
            QgsProcessingParameterNumber.Type.Double,
            0.5,
            True,  # optional: 0.5 when not set (models, qgis_process)
            0.01,
            1.0,
        )
    )
    params.append(
        QgsProcessingParameterNumber(
            ids.MIN_AREA,
            tr("Minimum polygon area (m²)"),
            QgsProcessingParameterNumber.Type.Double,
            0.0,
            True,
            0.0,
        )
    )
    params.append(
        QgsProcessingParameterNumber(
            ids.GSD,
            tr("Working resolution (m/px; 0 = the model's own)"),
            QgsProcessingParameterNumber.Type.Double,
            0.0,
            True,
            0.0,
        )
    )
    params.append(
        QgsProcessingParameterEnum(
            ids.DEVICE, tr("Device"), DEVICES, False, "auto", True, usesStaticStrings=True
        )
    )
    threads = QgsProcessingParameterNumber(
        ids.THREADS,
        tr("CPU threads"),
        QgsProcessingParameterNumber.Type.Integer,
        default_threads(),
        True,
        1,
        256,
    )
    threads.setFlags(threads.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    params.append(threads)
    precision = QgsProcessingParameterEnum(
        ids.PRECISION, tr("Precision"), PRECISIONS, False, "auto", True, usesStaticStrings=True
    )
    precision.setFlags(precision.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    params.append(precision)
    pixel = QgsProcessingParameterNumber(
        ids.PIXEL_SIZE,
        tr("Read resolution for web layers (layer CRS units; 0 = native)"),
        QgsProcessingParameterNumber.Type.Double,
        0.0,
        True,
        0.0,
    )
    pixel.setFlags(pixel.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    params.append(pixel)
    large = QgsProcessingParameterBoolean(
        ids.ALLOW_LARGE,
        tr("Allow large runs (more than 10,000 tiles or 4 h of estimated model time)"),
        False,
        True,
    )
    large.setFlags(large.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    params.append(large)
    points = QgsProcessingParameterString(
        ids.POINTS, tr("Clicks next to the text (x,y,+;x,y,- in the raster CRS; optional)"), "",
        False, True,
    )
    points.setFlags(points.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    params.append(points)
    # Hidden developer parameter: random-init registry config ("test-tiny") or a stand-in
    # ("standin:red") for tests and CI without weights. Not shown in any dialog.
    dev = QgsProcessingParameterString(
        ids.MODEL_CONFIG, tr("Developer model (random init / stand-in)"), "", False, True
    )
    dev.setFlags(dev.flags() | QgsProcessingParameterDefinition.Flag.FlagHidden)
    params.append(dev)
    params.append(
        QgsProcessingParameterVectorDestination(
            ids.OUTPUT, tr("Segmented polygons"), QgsProcessing.SourceType.TypeVectorPolygon
        )
    )
    outputs.append(QgsProcessingOutputNumber(ids.POLYGONS, tr("Number of polygons")))
    outputs.append(QgsProcessingOutputNumber(ids.AREA_M2, tr("Total area (m²)")))
    return params, outputs
