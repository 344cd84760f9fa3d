"""The dock's values -> a frozen :class:`~rs2sam_qgis.request.SegmentRequest` (main thread).

Checks come in the order a user fixes them: the text, the raster layer, the model, the area,
the output. Every refusal is an :class:`~rs2sam_qgis.layer_input.InputProblem` whose message
says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qgis.core import QgsRasterLayer, QgsVectorLayer
from qgis.gui import QgsMapCanvas

from ..i18n import tr
from ..layer_input import (
    InputProblem,
    default_output_dir,
    file_source,
    memory_output_path,
    output_path,
    provider_source,
    resolve_area,
)
from ..models import choice_problem, parse_model_choice
from ..request import SegmentRequest
from ..settings import PluginSettings

MAX_LAYER_NAME = 60
"""Longest result layer name taken from the query, in characters."""


@dataclass(frozen=True)
class BuiltRequest:
    """A checked request and what the user should know about its output.

    Attributes:
        request: Everything the worker needs, copied out of QGIS objects.
        temp_output_warning: Why the result is a temporary layer, or "".
    """

    request: SegmentRequest
    temp_output_warning: str


def build_segment_request(
    text: str,
    layer: QgsRasterLayer | None,
    values: PluginSettings,
    dev_model: str,
    aoi_layer: QgsVectorLayer | None,
    canvas: QgsMapCanvas,
) -> BuiltRequest:
    """Validate the dock's inputs and copy them into a request.

    Args:
        text: The query, white space collapsed.
        layer: The raster layer to segment, or None.
        values: The dock's current values.
        dev_model: The developer model, or "".
        aoi_layer: The polygon layer of ``selection`` mode, or None.
        canvas: The map canvas (visible extent, its CRS and scale).

    Raises:
        InputProblem: Something the user has to fix first (the message says what).
    """
    if not text:
        raise InputProblem(
            tr("Type what to segment first, e.g. 'the buildings next to the river'.")
        )
    if layer is None or not layer.isValid():
        raise InputProblem(tr("Choose a raster layer to segment (add one to the project first)."))
    choice = parse_model_choice(values.checkpoint, dev_model)
    problem = choice_problem(choice)
    if problem:
        raise InputProblem(problem)

    crs = canvas.mapSettings().destinationCrs()
    area = resolve_area(values.extent_mode, layer, canvas.extent(), crs, aoi_layer)
    source = file_source(layer) or provider_source(layer, area, canvas.mapUnitsPerPixel(), crs)
    memory, folder, warning = _output_choice(values)
    if memory or folder is None:
        out = memory_output_path()
    else:
        try:
            out = output_path(folder, text)
        except OSError as exc:
            raise InputProblem(
                tr("Cannot write to the output folder {folder}: {err}").format(
                    folder=folder, err=exc
                )
            ) from exc
    name = text if len(text) <= MAX_LAYER_NAME else text[: MAX_LAYER_NAME - 3] + "..."
    if choice.is_developer_choice:
        name = f"{name} [{choice.label}]"
    request = SegmentRequest(
        text=text,
        source=source,
        bbox=area.bbox,
        bbox_crs=area.bbox_crs,
        threshold=values.threshold,
        min_area_m2=values.min_area_m2,
        model=choice,
        device=values.device,
        threads=values.threads,
        precision=values.precision,
        out_path=str(out),
        layer_name=name,
        raster_layer_id=layer.id(),
        aoi_wkt=area.aoi_wkt,
        memory_layer=memory,
        source_name=layer.name(),
        gsd_m=values.gsd_m or None,
    )
    return BuiltRequest(request, warning)


def _output_choice(values: PluginSettings) -> tuple[bool, Path | None, str]:
    """(memory layer?, folder, warning): an unsaved project without a folder -> memory."""
    memory = values.memory_layer
    folder = Path(values.output_dir) if values.output_dir else None
    if memory or folder is not None:
        return memory, folder, ""
    folder = default_output_dir()
    if folder is not None:
        return False, folder, ""
    return True, None, tr(
        "The project is not saved, so the result is a temporary layer: click its "
        "icon in the Layers panel (Make Permanent) to save it, or choose an output "
        "folder in the Output box."
    )
