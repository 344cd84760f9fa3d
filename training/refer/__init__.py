"""Referring-expression builder: labelled masks -> (image, expression, mask) triples."""
