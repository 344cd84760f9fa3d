"""Resolve a query against a scene, with margins, and check that a text picks out its target.

Every rule below either returns the exact set of instance ids an expression refers to, or a
reason why a careful reader could not tell (too close to call, wrong grammatical number, no
such object). Coordinates are centroids normalised to [0, 1] by the image width / height.

* ``class``: all instances of the class (``sg`` requires exactly one: "the bridge").
* ``extreme`` (left/right/top/bottom): the instance with the smallest / largest coordinate;
  the runner-up must trail by at least ``max(gap_abs, gap_rel * mean extent of the two)``.
* ``ordinal`` (k-th from a side): sorted the same way; the k-th must be separated by that gap
  from both neighbours (the order of the others does not matter).
* ``corner`` (thirds of the image: corners, centre): centroids inside the region; any centroid
  within ``region_margin`` of the region's boundary makes the expression ambiguous.
* ``size``: largest / smallest by mask area; needs a ratio of ``size_ratio`` to the runner-up.
* ``nearest`` / ``farthest``: polygon distance to the only instance of the anchor class; needs
  ``d2 >= dist_ratio * d1 + dist_abs`` (nearest) or ``d1 >= far_ratio * d2 + dist_abs``
  (farthest), distances as fractions of the image diagonal.
* ``direction`` (left_of/right_of/above/below the only anchor): centroids beyond the anchor's
  extent by ``direction_margin``; any centroid within that margin is ambiguous.
* ``region`` (halves and quadrants, Dubai): components with at least ``region_in`` of their area
  inside; any major component with between ``region_out`` and ``region_in`` inside is
  ambiguous; minor specks go by majority.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from training.refer.grammar import Grammar, Query
from training.refer.scene import Instance, Scene

_THIRD = 1.0 / 3.0
_CORNER_BOXES = {  # (u0, v0, u1, v1) in normalised coordinates
    "upper_left": (0.0, 0.0, _THIRD, _THIRD),
    "upper_right": (2 * _THIRD, 0.0, 1.0, _THIRD),
    "lower_left": (0.0, 2 * _THIRD, _THIRD, 1.0),
    "lower_right": (2 * _THIRD, 2 * _THIRD, 1.0, 1.0),
    "center": (_THIRD, _THIRD, 2 * _THIRD, 2 * _THIRD),
}
_REGION_BOXES = {
    "left": (0.0, 0.0, 0.5, 1.0), "right": (0.5, 0.0, 1.0, 1.0),
    "top": (0.0, 0.0, 1.0, 0.5), "bottom": (0.0, 0.5, 1.0, 1.0),
    "upper_left": (0.0, 0.0, 0.5, 0.5), "upper_right": (0.5, 0.0, 1.0, 0.5),
    "lower_left": (0.0, 0.5, 0.5, 1.0), "lower_right": (0.5, 0.5, 1.0, 1.0),
}


@dataclass(frozen=True)
class Margins:
    """How decisive a spatial / size / distance difference must be (see the module docstring)."""

    gap_abs: float = 0.04
    gap_rel: float = 0.5
    region_margin: float = 0.04
    size_ratio: float = 1.3
    dist_ratio: float = 1.5
    far_ratio: float = 1.3
    dist_abs: float = 0.03
    direction_margin: float = 0.03
    region_in: float = 0.8
    region_out: float = 0.2


@dataclass(frozen=True)
class Resolution:
    """Either the referred ids, or (``ids is None``) why the query cannot be resolved."""

    ids: frozenset[int] | None
    reason: str = ""


def _fail(reason: str) -> Resolution:
    return Resolution(None, reason)


def _axis(side: str) -> tuple[int, float]:
    """(coordinate index, sign) so that sorting by sign * coord puts the ``side`` end first."""
    return {"left": (0, 1.0), "right": (0, -1.0), "top": (1, 1.0), "bottom": (1, -1.0)}[side]


def _extent(inst: Instance, axis: int) -> float:
    return inst.bbox[axis + 2] - inst.bbox[axis]


def _separated(a: Instance, b: Instance, axis: int, m: Margins) -> bool:
    gap = abs(a.centroid[axis] - b.centroid[axis])
    need = max(m.gap_abs, m.gap_rel * 0.5 * (_extent(a, axis) + _extent(b, axis)))
    return gap >= need


def _sorted_along(insts: list[Instance], side: str) -> tuple[list[Instance], int]:
    axis, sign = _axis(side)
    return sorted(insts, key=lambda i: (sign * i.centroid[axis], i.iid)), axis


def _box_membership(p: tuple[float, float], box: tuple[float, ...], margin: float) -> bool | None:
    """True inside by >= margin, False outside by >= margin, None in between.

    Box edges on the image border (0 or 1) are not boundaries: nothing lies beyond them.
    """
    u0, v0, u1, v1 = box
    u, v = p
    depth = math.inf
    outside = 0.0
    for coord, lo, hi in ((u, u0, u1), (v, v0, v1)):
        if lo > 0:
            depth = min(depth, coord - lo)
            outside = max(outside, lo - coord)
        if hi < 1:
            depth = min(depth, hi - coord)
            outside = max(outside, coord - hi)
    if outside > 0:
        return False if outside >= margin else None
    return True if depth >= margin else None


def _distance(a: Instance, b: Instance, scene: Scene) -> float:
    diag = math.hypot(scene.width, scene.height)
    if a.geom is not None and b.geom is not None:
        return float(a.geom.distance(b.geom)) / diag
    du = (a.centroid[0] - b.centroid[0]) * scene.width
    dv = (a.centroid[1] - b.centroid[1]) * scene.height
    return math.hypot(du, dv) / diag


def _region_fraction(inst: Instance, box: tuple[float, ...], scene: Scene) -> float:
    u0, v0, u1, v1 = box
    c0, c1 = round(u0 * scene.width), round(u1 * scene.width)
    r0, r1 = round(v0 * scene.height), round(v1 * scene.height)
    inside = int(np.count_nonzero(inst.mask[r0:r1, c0:c1]))
    return inside / max(inst.area_px, 1)


def _the_anchor(scene: Scene, q: Query) -> Instance | str:
    if not q.anchor or q.anchor == q.cls:
        return f"anchor class {q.anchor!r} must differ from the target class {q.cls!r}"
    anchors = scene.of_class(q.anchor, include_minor=False)
    if len(anchors) != 1:
        return f"'the {q.anchor}' is not unique ({len(anchors)} in the image)"
    return anchors[0]


def resolve(query: Query, scene: Scene, m: Margins | None = None) -> Resolution:
    """Resolve ``query`` in ``scene``.

    Args:
        query: The meaning of an expression.
        scene: The image's instances.
        m: Margins; defaults to :class:`Margins()`.

    Returns:
        The ids referred to, or a reason (ambiguous, empty, wrong number, ...).
    """
    m = m or Margins()
    res = _resolve_kind(query, scene, m)
    if res.ids is None:
        return res
    major = [i for i in scene.instances if i.iid in res.ids and not i.minor]
    if not major:
        return _fail("refers to nothing")
    if query.number == "sg" and len(major) != 1:
        return _fail(f"singular phrase but {len(major)} objects match")
    if query.number == "pl" and len(major) < 2:
        return _fail("plural phrase but only one object matches")
    return res


def _resolve_kind(q: Query, scene: Scene, m: Margins) -> Resolution:
    insts = scene.of_class(q.cls, include_minor=False)
    if q.kind == "class":
        return Resolution(frozenset(i.iid for i in scene.of_class(q.cls)))
    if not insts:
        return _fail(f"no {q.cls} in the image")
    if q.kind == "extreme":
        order, axis = _sorted_along(insts, q.arg)
        if len(order) > 1 and not _separated(order[0], order[1], axis, m):
            return _fail(f"{q.arg}most {q.cls} too close to call")
        return Resolution(frozenset({order[0].iid}))
    if q.kind == "ordinal":
        order, axis = _sorted_along(insts, q.arg)
        if q.k > len(order):
            return _fail(f"only {len(order)} {q.cls} in the image")
        i = q.k - 1
        for j in (i - 1, i + 1):
            if 0 <= j < len(order) and not _separated(order[i], order[j], axis, m):
                return _fail(f"ordinal {q.k} from the {q.arg} too close to call")
        return Resolution(frozenset({order[i].iid}))
    if q.kind == "corner":
        box = _CORNER_BOXES[q.arg]
        ids = set()
        for inst in insts:
            inside = _box_membership(inst.centroid, box, m.region_margin)
            if inside is None:
                return _fail(f"a {q.cls} lies on the border of the {q.arg} region")
            if inside:
                ids.add(inst.iid)
        return Resolution(frozenset(ids))
    if q.kind == "size":
        order = sorted(insts, key=lambda i: (-i.area_px, i.iid))
        if q.arg == "smallest":
            order = order[::-1]
        if len(order) > 1:
            big, small = sorted((order[0].area_px, order[1].area_px), reverse=True)
            if big < m.size_ratio * max(small, 1):
                return _fail(f"{q.arg} {q.cls} too close in size to call")
        return Resolution(frozenset({order[0].iid}))
    if q.kind in ("nearest", "farthest"):
        anchor = _the_anchor(scene, q)
        if isinstance(anchor, str):
            return _fail(anchor)
        dists = sorted((_distance(i, anchor, scene), i.iid) for i in insts)
        if q.kind == "farthest":
            dists = dists[::-1]
        if len(dists) > 1:
            d1, d2 = dists[0][0], dists[1][0]
            ok = (d2 >= m.dist_ratio * d1 + m.dist_abs if q.kind == "nearest"
                  else d1 >= m.far_ratio * d2 + m.dist_abs)
            if not ok:
                return _fail(f"{q.kind} {q.cls} to the {q.anchor} too close to call")
        return Resolution(frozenset({dists[0][1]}))
    if q.kind == "direction":
        anchor = _the_anchor(scene, q)
        if isinstance(anchor, str):
            return _fail(anchor)
        u0, v0, u1, v1 = anchor.bbox
        ids = set()
        for inst in scene.of_class(q.cls):
            u, v = inst.centroid
            signed = {"left_of": u0 - u, "right_of": u - u1, "above": v0 - v,
                      "below": v - v1}[q.arg]
            if abs(signed) < m.direction_margin and not inst.minor:
                return _fail(f"a {q.cls} is level with the {q.anchor}'s edge ({q.arg})")
            if signed > 0:
                ids.add(inst.iid)
        return Resolution(frozenset(ids))
    if q.kind == "region":
        box = _REGION_BOXES[q.arg]
        ids = set()
        for inst in scene.of_class(q.cls):
            frac = _region_fraction(inst, box, scene)
            if inst.minor:
                if frac >= 0.5:
                    ids.add(inst.iid)
            elif frac >= m.region_in:
                ids.add(inst.iid)
            elif frac > m.region_out:
                return _fail(f"a {q.cls} region straddles the {q.arg} boundary ({frac:.0%} in)")
        return Resolution(frozenset(ids))
    return _fail(f"unknown query kind {q.kind!r}")


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check_expression`."""

    ok: bool
    reason: str
    readings: tuple[Query, ...] = ()


def check_expression(
    text: str, scene: Scene, target: frozenset[int], grammar: Grammar, m: Margins | None = None
) -> CheckResult:
    """Does ``text`` pick out exactly ``target`` in ``scene``, under every reading?

    The text is parsed back with the grammar (not trusted from its generator); each reading is
    resolved with margins. It passes only if there is at least one reading, no reading is
    ambiguous, and every reading resolves to exactly ``target``.

    Args:
        text: The expression.
        scene: The image's instances.
        target: Instance ids the expression is meant to refer to.
        grammar: The grammar that can parse ``text``.
        m: Margins.

    Returns:
        ``ok`` and, when not ok, the reason.
    """
    readings = tuple(grammar.parse(text))
    if not readings:
        return CheckResult(False, "no template matches the text")
    for q in readings:
        res = resolve(q, scene, m)
        if res.ids is None:
            return CheckResult(False, f"ambiguous: {res.reason}", readings)
        if res.ids != target:
            return CheckResult(
                False, f"reading {q.kind}/{q.cls} refers to {sorted(res.ids)}, "
                f"not {sorted(target)}", readings)
    return CheckResult(True, "", readings)
