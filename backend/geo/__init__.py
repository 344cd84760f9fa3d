"""Georeferenced I/O and geometry for the pipeline (numpy, rasterio, shapely, pyproj; no torch)."""
