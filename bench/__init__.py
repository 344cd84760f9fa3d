"""``make bench``: speed, memory and scaling of the pipeline, the model and training.

Every case runs in a fresh subprocess (``python -m bench.case``) so that peak RSS is the
case's own. ``python -m bench`` repeats each case, aggregates median / min / max, checks the
output polygons against the known squares, prints a markdown table and writes JSON.
"""
