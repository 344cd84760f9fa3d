"""The parts of the "Segment by text" dock, one module per part (a view only, no logic).

:class:`~rs2sam_qgis.dock.SegmentDock` builds each part, lays them out top to bottom and
connects their signals; every part owns its widgets, its settings fields and its texts:

- :mod:`.deps_part`: the missing-dependencies box and "Install dependencies…".
- :mod:`.query_part`: the "Find" text with the recent queries.
- :mod:`.inputs_part`: the raster layer, the extent mode, the AOI layer and the extent line.
- :mod:`.options_part`: threshold, minimum area, working resolution.
- :mod:`.model_part`: the "Model and device" group (checkpoint, developer model, device, threads).
- :mod:`.output_part`: the "Output" group (folder or temporary layer).
- :mod:`.run_part`: Run/Cancel, the progress bar and the status line.
- :mod:`.request_builder`: the widgets' values -> a frozen ``SegmentRequest``.

A new control goes into the part it belongs to (or a new part module), not into the dock.
"""
