"""The parts of the "Segment by text" dock, one module per part (a view only, no logic).

:class:`~rs2sam_qgis.dock.SegmentDock` builds each part, lays them out top to bottom and
connects their signals; every part owns its widgets, its settings fields and its texts:

- :mod:`.deps_part`: the missing-dependencies box and "Install dependencies…".
- :mod:`.query_part`: the "Find" text with the recent queries.
- :mod:`.inputs_part`: the raster layer, the extent mode, the AOI layer and the extent line
  (:mod:`.layer_follow` keeps the raster picker on a raster while the project changes).
- :mod:`.options_part`: threshold, minimum area, working resolution.
- :mod:`.model_part`: the "Model and device" group (checkpoint, developer model, device, threads).
- :mod:`.output_part`: the "Output" group (folder or temporary layer).
- :mod:`.run_part`: Run/Cancel, the progress bar and the status line.
- :mod:`.quality_part`: what the answer is worth for the query's concept, and the remedies.
- :mod:`.refine_part`: "Refine", correcting the last answer with clicks on the map.
- :mod:`.teach_part`: "Teach from these features", adapting the model to the user's polygons.
- :mod:`.request_builder`: the widgets' values -> a frozen ``SegmentRequest``.

A new control goes into the part it belongs to (or a new part module), not into the dock.
A part that stores a preference reads it in ``apply(settings)`` and returns it from
``values()`` (a dict of :class:`~rs2sam_qgis.settings.PluginSettings` fields); rows go into the
main form through ``add_rows(form)`` or into the part's own group (``ModelPart.form``); extra
buttons beside Run/Cancel go into ``RunPart.buttons``.
"""
